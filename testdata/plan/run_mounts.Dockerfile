# RUN --mount: values expanded, from= a stage (a dependency) or an image,
# cache mounts start empty; --network; proxy build args.
# plan: build-arg=HTTP_PROXY=http://proxy:3128
# plan: build-arg=no_proxy=localhost
FROM alpine:3.20 AS deps
RUN echo deps > /deps

FROM golang:1.22
ARG CACHE_ID=gomod
RUN --mount=type=cache,target=/go/pkg/mod,id=${CACHE_ID} \
    --mount=type=bind,from=deps,source=/deps,target=/deps \
    --mount=from=busybox,target=/bb \
    --mount=type=bind,target=/src \
    --network=none \
    go build ./...
