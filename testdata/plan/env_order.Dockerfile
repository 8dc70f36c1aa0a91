# ENV replaces an inherited variable in place in the config, while the
# build environment moves it last; ARG after ENV of the same name wins in
# the build environment only.
FROM golang:1.22 AS a
ENV GOPATH=/gopath NEW=1
ARG GOPATH=/from-arg
RUN echo $GOPATH

FROM a
RUN echo $GOPATH
