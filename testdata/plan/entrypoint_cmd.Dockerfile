# ENTRYPOINT drops a CMD inherited from the base, not one set earlier in
# the same stage; CMD always sets ArgsEscaped.
FROM node:20 AS inherited
ENTRYPOINT ["/entry.sh"]

FROM node:20 AS own
CMD ["serve"]
ENTRYPOINT ["/entry.sh"]

FROM own AS child
ENTRYPOINT /entry2.sh --flag

FROM child
COPY --from=inherited /entry.sh /
CMD echo hi
