#!/bin/sh
# Run once by the image's entrypoint when it creates the database: let the replica
# (compose's db-replica) connect for replication with the same password as the app.
set -eu
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
