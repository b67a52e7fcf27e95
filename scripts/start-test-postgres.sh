#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the store tests and prints the URL to use:
#
#   export SAPA_TEST_POSTGRES_URL=$(scripts/start-test-postgres.sh)     # port 55432
#   scripts/start-test-postgres.sh 55433                                 # another port
#   cargo test store::
#
# It listens on 127.0.0.1 only, trusts every local connection (no passwords), keeps its data
# in /tmp/sapa-test-postgres-PORT and runs without fsync: for tests, never for real data.
# Running it again finds the server running and only prints the URL. To stop and forget it:
#
#   runuser -u postgres -- pg_ctl -D /tmp/sapa-test-postgres-55432 stop   # (as root)
#   rm -rf /tmp/sapa-test-postgres-55432
#
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.
# Progress goes to stderr; stdout is only the URL.
set -euo pipefail

port="${1:-55432}"
if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    echo "usage: $0 [PORT]   (default 55432)" >&2
    exit 2
fi
data="/tmp/sapa-test-postgres-$port"
url="postgres://postgres@127.0.0.1:$port/postgres"

# The newest Debian cluster binaries; else whatever is on PATH.
bin=""
for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$dir/pg_ctl" && -x "$dir/initdb" ]]; then
        bin="$dir"
        break
    fi
done
if [[ -z "$bin" ]]; then
    if ! command -v pg_ctl >/dev/null || ! command -v initdb >/dev/null; then
        echo "no PostgreSQL server binaries (pg_ctl, initdb) found; install the postgresql package" >&2
        exit 1
    fi
    bin="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
fi

# Runs a command as the server's user: `postgres` when we are root, else ourselves.
as_server_user() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

if [[ -f "$data/PG_VERSION" ]] && as_server_user "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    echo "PostgreSQL already running in $data" >&2
    echo "$url"
    exit 0
fi

if [[ ! -f "$data/PG_VERSION" ]]; then
    rm -rf "$data"
    mkdir -p "$data"
    chmod 700 "$data"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres: "$data"
    fi
    echo "initialising a test cluster in $data" >&2
    as_server_user "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 \
        --locale=C.UTF-8 >"$data.initdb.log" 2>&1 || {
        cat "$data.initdb.log" >&2
        exit 1
    }
fi

echo "starting PostgreSQL on 127.0.0.1:$port" >&2
if ! as_server_user "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >&2; then
    echo "PostgreSQL did not start; the end of $data/server.log:" >&2
    tail -n 20 "$data/server.log" >&2 || true
    exit 1
fi
echo "$url"
