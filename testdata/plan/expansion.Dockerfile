# Variable expansion rules: defaults, alternatives, escapes, same-line ENV
# and ARG references.
FROM alpine:3.20
ENV A=1 B=${A:-unset}
ENV C=${A:-x} D=${NOPE:-fallback} E=${A:+alt} F=${NOPE:+alt} G=\$A H='$A' I="$A"
ARG X=1 Y=${X}0
LABEL "label.$A"="${B}-${Y}"
WORKDIR /w/${NOPE:-dflt}
USER ${A}000
RUN echo $A \$B '$C'
