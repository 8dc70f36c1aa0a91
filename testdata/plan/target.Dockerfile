# --target picks a middle stage; later stages are not planned.
# plan: target=TEST
ARG TARGETSTAGE
FROM alpine:3.20 AS base
RUN echo base

FROM base AS test
ARG TARGETSTAGE
RUN echo testing in $TARGETSTAGE

FROM base AS release
RUN echo release
