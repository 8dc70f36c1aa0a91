# plan: image-context=tools=alpine:3.20
# plan: image-context=builder=busybox
# --build-context images: FROM and COPY --from such a name use the
# image; one named like a stage replaces that stage, as in BuildKit.
FROM node:20 AS builder
RUN never runs

FROM tools
COPY --from=builder /bin/busybox /bin/
COPY --from=tools /etc/alpine-release /etc/
