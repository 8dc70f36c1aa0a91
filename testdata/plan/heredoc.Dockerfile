# Heredocs: a bare RUN heredoc runs its text, a shebang one runs a script
# file, other forms go to the shell; COPY heredocs expand unless quoted.
FROM alpine:3.20
ENV NAME=world
RUN <<EOF
echo hello
echo $NAME
EOF
RUN <<EOF
#!/bin/sh
echo script
EOF
RUN cat <<EOF > /greeting
hello $NAME
EOF
COPY <<EOF /etc/greeting.txt
hello "$NAME" from ${NAME:-nobody}
EOF
COPY <<"EOF" /etc/raw.txt
hello $NAME
EOF
