# ADD and COPY options: URL with checksum, --chown/--chmod expanded,
# --link, --parents, --exclude, --unpack, --keep-git-dir.
FROM alpine:3.20
ARG OWNER=1000 SUM=sha256:0000000000000000000000000000000000000000000000000000000000000000
ADD --checksum=$SUM https://example.com/tool.tar.gz /opt/
ADD --chown=${OWNER}:${OWNER} --chmod=u+rwx,go+rx --unpack=false app.tar.gz /opt/app/
ADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.34.2 /src/buildkit
COPY --link --chown=1000 --exclude=*.md --exclude=docs docs /srv/docs
COPY --parents ./src/./pkg/*.go /build/
