# FROM scratch starts with PATH and WorkingDir "/"; an image without PATH
# gets the default one; hostname and tty of a base are not carried over.
FROM busybox AS bb
RUN echo $PATH

FROM scratch
COPY --from=bb /bin/busybox /bin/busybox
ENV HOME=/root
CMD ["/bin/busybox", "sh"]
