#!/bin/sh
# A streaming replica of $PRIMARY_HOST: on first start (an empty $PGDATA) copy the primary
# with pg_basebackup -R (which writes standby.signal and primary_conninfo), then run the
# given command (the server). Used by compose's db-replica service and by the cluster test.
set -eu
: "${PGDATA:?}" "${PRIMARY_HOST:?}" "${PGPASSWORD:?}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    # The primary may still be starting: retry for about a minute.
    tries=0
    until pg_basebackup -D "$PGDATA" -R -X stream -c fast -h "$PRIMARY_HOST" \
        -p "${PRIMARY_PORT:-5432}" -U "${PRIMARY_USER:-mapserver}"; do
        tries=$((tries + 1))
        [ "$tries" -lt 30 ] || exit 1
        rm -rf "${PGDATA:?}"/*
        sleep 2
    done
    chmod 700 "$PGDATA"
fi
exec "$@"
