# ARG scope: per stage, inherited by FROM <stage>, ENV vs ARG of the same
# name, and the "|N K=V" prefix of RUN history.
# plan: build-arg=VERSION=2.0
FROM alpine:3.20 AS base
ARG VERSION=1.0
ARG COLOR=red SIZE
RUN echo $VERSION $COLOR
ENV COLOR=blue
RUN echo $COLOR
ARG COLOR=green
RUN echo $COLOR

FROM base AS child
RUN echo inherited $VERSION $COLOR

FROM alpine:3.20
COPY --from=child /x /x
RUN echo "no args here: $VERSION"
ARG VERSION
RUN echo $VERSION
