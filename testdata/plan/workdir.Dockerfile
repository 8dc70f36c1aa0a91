# WORKDIR relative to the previous one (and to the base image's), "/"
# makes no layer; COPY destinations against WORKDIR keep a trailing "/".
FROM golang:1.22 AS gobase
WORKDIR src
COPY a .
COPY b ./
COPY c sub/
COPY d sub/dir/.
COPY e /abs/file
WORKDIR ../pkg/./x
WORKDIR /
COPY f rel
RUN pwd

FROM scratch
WORKDIR /app/
WORKDIR bin
COPY g .
COPY --from=gobase /go/pkg/x ../lib/
