# One stage on an image: every metadata instruction and the history
# BuildKit writes for it.
FROM alpine:3.20
MAINTAINER Jane Doe <jane@example.com>
ENV APP_HOME=/srv/app LANG=C.UTF-8
ENV PATH=/srv/app/bin:$PATH
LABEL org.opencontainers.image.title="demo app" version=1.0
WORKDIR $APP_HOME
COPY --chown=app:app --chmod=0644 a.txt b.txt ./
RUN apk add --no-cache curl && make
EXPOSE 8080 53/udp
VOLUME ["/data", "$APP_HOME/cache"]
USER app
STOPSIGNAL SIGQUIT
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
RUN echo "shell is $0"
CMD ./serve --port 8080
