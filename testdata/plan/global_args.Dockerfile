# ARGs before the first FROM are usable in FROM only; re-declaring one in
# a stage takes its global value; build args override defaults.
# plan: build-arg=VARIANT=3.20
# plan: build-arg=UNUSED=1
# plan: build-arg=ALSO_UNUSED=2
ARG REGISTRY=docker.io
ARG VARIANT=3.19
ARG IMAGE=alpine:${VARIANT}
ARG NOVALUE
FROM ${IMAGE} AS one
RUN echo "registry=$REGISTRY image=$IMAGE"
ARG REGISTRY
ARG IMAGE=overridden-default
ARG NOVALUE
RUN echo "registry=$REGISTRY image=$IMAGE novalue=$NOVALUE"
