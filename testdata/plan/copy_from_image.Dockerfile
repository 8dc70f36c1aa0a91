# COPY --from an image (resolved like a base) and from scratch; stage
# deps are only stages.
FROM node:20
COPY --from=alpine:3.20 /etc/alpine-release /etc/
COPY --from=scratch / /empty/
COPY --from=busybox /bin/busybox /bin/
