#!/usr/bin/env bash
# Start the Redis and PostgreSQL servers the tests need, when they are not already answering.
# Checks each port first, starts only what is down, waits until it answers, and says what it did.
# Installs the servers from Debian's packages when the binaries are missing (needs root).
set -euo pipefail

redis_port=6379
pg_port=5432

say() { printf 'services: %s\n' "$*"; }

port_open() {  # host port
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && exec 3>&- 3<&-
}

wait_port() {  # name host port
    for _ in $(seq 1 60); do
        if port_open "$2" "$3"; then say "$1 answers on $2:$3"; return 0; fi
        sleep 0.5
    done
    say "$1 did not come up on $2:$3"; return 1
}

apt_ready=0
apt_install() {
    if [ "$(id -u)" != 0 ]; then say "cannot install $* without root"; return 1; fi
    if [ "$apt_ready" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq; apt_ready=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

start_redis() {
    if port_open 127.0.0.1 "$redis_port"; then say "Redis already running on 127.0.0.1:$redis_port"; return; fi
    command -v redis-server >/dev/null || { say "installing redis-server"; apt_install redis-server; }
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    local dir=/var/lib/redis log=/var/log/redis/ci.log
    [ -w "$dir" ] || dir=$(mktemp -d)
    [ -w "$(dirname "$log")" ] || log="$dir/redis.log"
    say "starting Redis on 127.0.0.1:$redis_port"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$redis_port" --save "" \
        --appendonly no --dir "$dir" --logfile "$log"
    wait_port Redis 127.0.0.1 "$redis_port"
}

start_postgres() {
    if port_open 127.0.0.1 "$pg_port"; then say "PostgreSQL already running on 127.0.0.1:$pg_port"; return; fi
    if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
        say "installing postgresql"; apt_install postgresql
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    say "starting PostgreSQL $version on 127.0.0.1:$pg_port"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_port PostgreSQL 127.0.0.1 "$pg_port"
    # A fresh cluster has only the postgres role: add what the tests expect (idempotent).
    if command -v su >/dev/null && [ "$(id -u)" = 0 ]; then
        su postgres -c "psql -q -tAc \"SELECT 1 FROM pg_roles WHERE rolname='root'\"" | grep -q 1 \
            || su postgres -c "createuser -s root"
        su postgres -c "psql -q -tAc \"SELECT 1 FROM pg_database WHERE datname='test'\"" | grep -q 1 \
            || su postgres -c "createdb -O root test"
        local hba
        hba=$(su postgres -c "psql -q -tAc 'SHOW hba_file'")
        if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
            sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
            su postgres -c "psql -q -c 'SELECT pg_reload_conf()'" >/dev/null
            say "allowed trust authentication on loopback"
        fi
    fi
}

start_redis
start_postgres
