# EXPOSE and VOLUME expand variables; EXPOSE splits words, defaults to
# tcp and expands ranges.
FROM alpine:3.20
ENV PORTS="80 443" RANGE=8000-8002
EXPOSE $PORTS ${RANGE}/udp 9090/TCP
EXPOSE 127.0.0.1:5000:5000
VOLUME /var/lib/data $HOME/cache
