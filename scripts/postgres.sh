#!/usr/bin/env bash
# A throw-away PostgreSQL 15 server on loopback, for the tests of the PostgreSQL
# metadata backend and of several instances.
#
#   scripts/postgres.sh start DIR   # prints the lines of DIR/postgres.env when ready
#   scripts/postgres.sh stop DIR    # stops the server and removes DIR
#   scripts/postgres.sh pause DIR   # stops the server (fast shutdown), keeping DIR: an outage
#   scripts/postgres.sh resume DIR  # starts it again on its port, returns when it answers
#
# Debian's postgresql-15 binaries, its own data directory under DIR (owned by the
# `postgres` system user: initdb refuses to run as root), a free port on 127.0.0.1 only,
# no Unix socket outside DIR, and password (SCRAM) authentication for the role
# `registryd`, so the tests go through the same login a production server asks for.
# fsync stays on: crash tests rely on what a commit promises.
# The role may create databases: each test works in a database of its own.
# The server takes TLS as well as plain TCP, with a certificate from a private CA.
# DIR/postgres.env holds POSTGRES_URL (without the password), PGPASSWORD and POSTGRES_CA
# (the CA's certificate, for sslmode=verify-full).
set -euo pipefail

command_name=${1:-}
dir=${2:-}
if [[ -z "$command_name" || -z "$dir" ]]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 64
fi

bin=/usr/lib/postgresql/15/bin
as_postgres() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

stop() {
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        as_postgres "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

start() {
    if [[ ! -x "$bin/initdb" ]]; then
        echo "postgres.sh: PostgreSQL 15 is missing (scripts/install-deps.sh --test installs postgresql-15)" >&2
        exit 69
    fi
    mkdir -p "$dir"
    local password port
    password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    port=$(free_port)
    printf '%s\n' "$password" >"$dir/superuser-password"
    if [[ $(id -u) -eq 0 ]]; then chown -R postgres: "$dir"; fi
    chmod 700 "$dir"
    as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 --pwfile="$dir/superuser-password" \
        --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
    # TLS beside plain TCP (pg_hba's "host" lines take both), so tests can connect with
    # sslmode=require and verify-full: a private CA ($dir/ca.crt) and a certificate for
    # 127.0.0.1 signed by it.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=registryd test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$dir/data/server.key" -out "$dir/server.csr" >/dev/null 2>&1
    printf 'subjectAltName = IP:127.0.0.1\n' >"$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
        -extfile "$dir/server.ext" -out "$dir/data/server.crt" >/dev/null 2>&1
    if [[ $(id -u) -eq 0 ]]; then chown postgres: "$dir/data/server.key" "$dir/data/server.crt"; fi
    chmod 600 "$dir/data/server.key"
    cat >>"$dir/data/postgresql.conf" <<CONF
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
shared_buffers = 128MB
logging_collector = off
CONF
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null || {
        tail -n 20 "$dir/server.log" >&2
        exit 1
    }
    PGPASSWORD=$(cat "$dir/superuser-password") as_postgres "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
        -c "CREATE ROLE registryd LOGIN CREATEDB PASSWORD '$password'" -c "CREATE DATABASE registryd OWNER registryd" >/dev/null
    cat >"$dir/postgres.env" <<ENV
POSTGRES_URL=postgres://registryd@127.0.0.1:$port/registryd
PGPASSWORD=$password
POSTGRES_CA=$dir/ca.crt
ENV
    if [[ $(id -u) -eq 0 ]]; then chmod 755 "$dir"; chmod 644 "$dir/postgres.env" "$dir/ca.crt"; fi
    cat "$dir/postgres.env"
}

pause() {
    as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

resume() {
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
}

case "$command_name" in
start) start ;;
stop) stop ;;
pause) pause ;;
resume) resume ;;
*)
    echo "usage: $0 start|stop|pause|resume DIR" >&2
    exit 64
    ;;
esac
