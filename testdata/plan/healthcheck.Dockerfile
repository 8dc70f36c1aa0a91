# HEALTHCHECK with options, shell and exec forms, and NONE.
FROM alpine:3.20 AS web
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --start-interval=1s --retries=4 CMD curl -f http://localhost/ || exit 1

FROM web AS exec
HEALTHCHECK CMD ["/bin/check", "--quick"]

FROM exec
HEALTHCHECK NONE
