# Only the stages the last one needs are planned; COPY --from by name
# (any case) and by index.
FROM golang:1.22 AS Builder
WORKDIR /src
COPY . .
RUN go build -o /out/app ./cmd/app

FROM alpine:3.20 AS docs
RUN echo never planned > /docs

FROM busybox AS assets
COPY static /static

FROM alpine:3.20
COPY --from=builder /out/app /usr/local/bin/app
COPY --from=2 /static /srv/static
ENTRYPOINT ["/usr/local/bin/app"]
