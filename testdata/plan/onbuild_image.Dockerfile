# Triggers of base images run first, at the FROM line; a trigger's
# COPY --from pulls in a stage the target did not otherwise need.
FROM busybox AS assets
RUN mkdir /dist && echo hi > /dist/index.html

FROM example/onbuild:1 AS app
RUN echo built

FROM example/onbuild-from:1
COPY --from=app /app /app
