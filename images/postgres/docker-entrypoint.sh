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
set -Eeuo pipefail

# initdb's cluster for POSTGRES_USER=postgres and scram-sha-256, made when
# the image was built.
SEED=/var/lib/postgresql/seed

if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chown -R postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

# One statement in single-user mode: no server, no port, no waiting for one.
single() {
	local out
	if ! out=$(printf '%s\n' "$1" | postgres --single -D "$PGDATA" -c fsync=off postgres 2>&1) \
		|| [[ "$out" == *ERROR:* ]]; then
		printf 'error: %s\n%s\n' "${2:-the statement failed}" "$out" >&2
		exit 1
	fi
}

if [ "$1" = 'postgres' ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	POSTGRES_USER="${POSTGRES_USER:-postgres}"
	POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
	AUTH="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$AUTH" != 'trust' ]; then
		echo 'error: database is uninitialized and POSTGRES_PASSWORD is not set' >&2
		echo '       set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust' >&2
		exit 1
	fi
	scripts=$(find /docker-entrypoint-initdb.d -mindepth 1 -maxdepth 1 \( -name '*.sh' -o -name '*.sql' \) | head -n 1)
	# The image holds the cluster initdb makes for the default user and
	# authentication (made when the image was built, see images.rs): when
	# that is what this start asks for, it is copied and given the password,
	# which takes a fraction of initdb's time.
	if [ -s "$SEED/PG_VERSION" ] && [ "$POSTGRES_USER" = postgres ] && [ "$AUTH" = scram-sha-256 ] \
		&& { [ -z "${POSTGRES_INITDB_ARGS:-}" ] || [ "$POSTGRES_INITDB_ARGS" = '--no-sync' ]; } \
		&& [[ "$POSTGRES_PASSWORD" != *$'\n'* ]]; then
		cp -a "$SEED/." "$PGDATA/"
		q="'"
		single "ALTER ROLE postgres PASSWORD '${POSTGRES_PASSWORD//$q/$q$q}'" 'setting the password failed'
	else
		initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") \
			-D "$PGDATA" --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host="$AUTH" \
			${POSTGRES_INITDB_ARGS:-}
	fi
	printf 'host all all all %s\n' "$AUTH" >> "$PGDATA/pg_hba.conf"
	printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"

	if [ -z "$scripts" ]; then
		# Nothing to run in a server: the database is made in single-user mode.
		if [ "$POSTGRES_DB" != 'postgres' ]; then
			dq='"'
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
