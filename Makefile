# mybuild: a daemonless Dockerfile image builder.
#
#   make demo   install what is missing, build mybuild, build the busybox
#               base image and the example image, show them
#   make test   install what is missing, then run every test

GO       ?= go
BIN      := bin/mybuild
STATE    := $(CURDIR)/.state
DEMOROOT := $(STATE)/demo-store
PKG      := ./...

.PHONY: all build deps demo test vet bench clean

all: build

deps:
	./hack/install-deps.sh

build:
	$(GO) build -o $(BIN) ./cmd/mybuild

vet:
	$(GO) vet $(PKG)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: files above need formatting'; exit 1; }

demo: deps build
	./hack/busybox-rootfs.sh $(STATE)/busybox
	$(BIN) --root $(DEMOROOT) build --progress=plain -t busybox:latest $(STATE)/busybox
	$(BIN) --root $(DEMOROOT) build --progress=plain -t hello:latest examples/hello
	$(BIN) --root $(DEMOROOT) images
	$(BIN) --root $(DEMOROOT) history hello
	$(BIN) --root $(DEMOROOT) build --progress=plain -o type=oci,dest=$(STATE)/hello-oci -t hello:latest examples/hello
	skopeo inspect --config oci:$(STATE)/hello-oci:hello:latest | jq '.config'

test: deps vet
	$(GO) test -count=1 -timeout 15m $(PKG)
	@echo '# the build and RUN end-to-end tests again, on the naive snapshotter'
	MYBUILD_TEST_SNAPSHOTTER=naive $(GO) test -count=1 -timeout 10m -run 'TestBuild|TestRun' ./cmd/mybuild

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 30m ./cmd/mybuild

clean:
	rm -rf bin $(STATE)
