# Automatic platform args: usable in FROM without a declaration, in a
# stage only once declared; build args override them.
# plan: platform=linux/aarch64/v8
# plan: build-arg=TARGETVARIANT=v9
FROM --platform=$BUILDPLATFORM golang:1.22 AS build
ARG TARGETOS TARGETARCH
ARG TARGETVARIANT
ARG BUILDPLATFORM
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH echo build on $BUILDPLATFORM for $TARGETPLATFORM

FROM scratch
ARG TARGETPLATFORM
COPY --from=build /out/app-${TARGETARCH} /app
LABEL platform=$TARGETPLATFORM
