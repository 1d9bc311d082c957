#!/bin/bash
# Entrypoint of tekup-harness/postgres, built offline from Debian packages by
# `tekup-harness images build`. It follows the official `postgres` image's
# contract, so the ecosystem file can name either image:
#   - POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust),
#     POSTGRES_USER (default postgres), POSTGRES_DB (default $POSTGRES_USER),
#     PGDATA (default /var/lib/postgresql/data);
#   - initdb on first start, then *.sql/*.sh from /docker-entrypoint-initdb.d;
#   - with scripts in /docker-entrypoint-initdb.d, they run in a temporary
#     server (Unix socket only) during that first start, which logs to
#     stdout, so "ready to accept connections" appears on stdout, and the
#     final server logs to stderr, where the same line means "ready";
#     without scripts there is no temporary server: the database is made
#     in single-user mode.
#
# Faster first starts, same result: the image holds, in $SEED, the cluster
# initdb makes for POSTGRES_USER=postgres and scram-sha-256, with a
# database `tekup_seed`, marked by the file $SEED_MARK (made when the image
# was built, see harness/src/env/images.rs). A start that asks for exactly
# that cluster (no init scripts, POSTGRES_INITDB_ARGS empty or --no-sync)
# links PGDATA to it and sets the password and renames the database, in one
# single-user run; any other start runs initdb.
set -Eeuo pipefail

SEED=/var/lib/postgresql/seed
SEED_MARK=tekup-seed

if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	# Only what is not postgres's already: changing the owner of the baked
	# cluster's files would copy each one out of the image's layer.
	find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
	[ "$(stat -c %a "$PGDATA")" = 700 ] || chmod 700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

# Statements (one per line) in single-user mode: no server, no port, no
# waiting for one.
single() {
	local out
	if ! out=$(printf '%s\n' "$1" | postgres --single -D "$PGDATA" -c fsync=off postgres 2>&1) \
		|| [[ "$out" == *ERROR:* ]]; then
		printf 'error: %s\n%s\n' "$2" "$out" >&2
		exit 1
	fi
}

POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
AUTH="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
scripts=$(find /docker-entrypoint-initdb.d -mindepth 1 -maxdepth 1 \( -name '*.sh' -o -name '*.sql' \) | head -n 1)
q="'"
dq='"'

# The baked cluster becomes PGDATA through a symbolic link (copying it would
# copy every file out of the image's layer: 1.7 s here); a PGDATA that is
# not an empty directory of its own (a volume, earlier data) keeps initdb.
if [ "$1" = 'postgres' ] && [ -e "$SEED/$SEED_MARK" ] && [ ! -s "$PGDATA/PG_VERSION" ] \
	&& [ "$POSTGRES_USER" = postgres ] && [ "$AUTH" = scram-sha-256 ] && [ -z "$scripts" ] \
	&& [ -n "${POSTGRES_PASSWORD:-}" ] && [[ "$POSTGRES_PASSWORD" != *$'\n'* ]] \
	&& { [ -z "${POSTGRES_INITDB_ARGS:-}" ] || [ "$POSTGRES_INITDB_ARGS" = '--no-sync' ]; } \
	&& rmdir "$PGDATA" 2>/dev/null; then
	ln -s "$SEED" "$PGDATA"
	if [ "$POSTGRES_DB" = postgres ]; then
		database='DROP DATABASE tekup_seed'
	else
		database="ALTER DATABASE tekup_seed RENAME TO \"${POSTGRES_DB//$dq/$dq$dq}\""
	fi
	single "ALTER ROLE postgres PASSWORD '${POSTGRES_PASSWORD//$q/$q$q}'
$database" 'setting up the cluster made with the image failed'
	rm -f "$SEED/$SEED_MARK"
	printf 'host all all all %s\n' "$AUTH" >> "$PGDATA/pg_hba.conf"
	printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
	echo
	echo 'PostgreSQL init process complete (the cluster made with the image); ready for start up.'
	echo
fi

if [ "$1" = 'postgres' ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$AUTH" != 'trust' ]; then
		echo 'error: database is uninitialized and POSTGRES_PASSWORD is not set' >&2
		echo '       set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust' >&2
		exit 1
	fi
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") \
		-D "$PGDATA" --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host="$AUTH" \
		${POSTGRES_INITDB_ARGS:-}
	printf 'host all all all %s\n' "$AUTH" >> "$PGDATA/pg_hba.conf"
	printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"

	if [ -z "$scripts" ]; then
		# Nothing to run in a server: the database is made in single-user mode.
		if [ "$POSTGRES_DB" != 'postgres' ]; then
			single "CREATE DATABASE \"${POSTGRES_DB//$dq/$dq$dq}\"" "creating the database $POSTGRES_DB failed"
		fi
	else
		pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
		if [ "$POSTGRES_DB" != 'postgres' ]; then
			psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
				--set db="$POSTGRES_DB" <<-'SQL'
				CREATE DATABASE :"db";
			SQL
		fi
		for f in /docker-entrypoint-initdb.d/*; do
			case "$f" in
				*.sh) echo "running $f"; . "$f" ;;
				*.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f "$f" ;;
				*) ;;
			esac
		done
		pg_ctl -D "$PGDATA" -m fast -w stop
	fi
	echo
	echo 'PostgreSQL init process complete; ready for start up.'
	echo
fi

exec "$@"
