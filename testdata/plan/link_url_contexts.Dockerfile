# plan: context=assets
# plan: context=rootfs
# COPY/ADD --link (with numeric --chown), ADD of a URL with a checksum,
# and --build-context directories in FROM and COPY --from; a context wins
# over a stage of the same name.
FROM busybox AS assets
RUN echo stage

FROM rootfs AS fromdir
COPY --from=assets /a.txt /a.txt

FROM busybox
WORKDIR /app
COPY --link --chown=1000:1000 a.txt sub/
ADD --link --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/dl/tool.tar.gz /opt/
COPY --from=assets /logo.png /app/
COPY --from=fromdir /a.txt /b.txt
