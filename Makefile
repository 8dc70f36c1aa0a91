# mybuild: a daemonless Dockerfile image builder.
#
#   make demo   install what is missing, build mybuild, build the busybox
#               base image and the example image, show them
#   make test   install what is missing, then run every test
#   make bench  (root) time mybuild against Buildah on ../shared/peers/corpus
#   make fuzz   run each fuzz target for FUZZTIME (default 30s), one core each

GO       ?= go
BIN      := bin/mybuild
STATE    := $(CURDIR)/.state
DEMOROOT := $(STATE)/demo-store
PKG      := ./...
FUZZTIME ?= 30s
# Fuzz targets as PACKAGE:NAME; seeds live in PACKAGE/testdata/fuzz/NAME/.
FUZZ_TARGETS := ./parser:FuzzParse ./parser:FuzzExpand ./planner:FuzzPlan \
	./snapshot:FuzzUnpack ./snapshot:FuzzUnpackParentCache ./executor/copier:FuzzADDArchive ./executor/copier:FuzzIgnore \
	./internal/registry:FuzzReference \
	./cmd/mybuild:FuzzBuildArgs ./cmd/mybuild:FuzzOutput ./cmd/mybuild:FuzzLimits

.PHONY: all build deps demo test vet bench bench-go fuzz clean

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

# Needs root: mybuild and Buildah timed on ../shared/peers/corpus (bench/README.md).
bench: build
	bench/peers.sh

bench-go: deps
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 30m ./cmd/mybuild

# A crash stops the run and is saved under PACKAGE/testdata/fuzz/NAME/:
# fix it and keep the file as a seed.
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "# $$name ($$pkg), $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s -parallel 1 $$pkg; \
	done

clean:
	rm -rf bin $(STATE)
