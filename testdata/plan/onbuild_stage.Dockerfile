# ONBUILD in a stage: stored in its config, run in a stage built FROM it,
# and not inherited further.
FROM alpine:3.20 AS framework
WORKDIR /app
ONBUILD COPY . /app/src
ONBUILD RUN make -C /app/src
RUN echo framework

FROM framework AS app
RUN echo app

FROM app
RUN echo final
