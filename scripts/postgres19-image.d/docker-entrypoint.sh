#!/usr/bin/env bash
# docker-entrypoint.sh of pgwait-local/postgres (scripts/postgres19-image),
# written from the official postgres image's documented behaviour, not from
# its source:
#
#   - `docker-entrypoint.sh postgres [args]` (or only postgres's flags, -c
#     name=value ...): as root, makes $PGDATA and /var/run/postgresql belong
#     to postgres and runs itself again as postgres; then, when $PGDATA holds
#     no database, initializes one and runs /docker-entrypoint-initdb.d/; then
#     runs postgres with the arguments. Any other command runs as it is.
#   - POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust),
#     POSTGRES_USER (default postgres), POSTGRES_DB (default $POSTGRES_USER),
#     POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR, POSTGRES_HOST_AUTH_METHOD
#     (default scram-sha-256, the pg_hba.conf method for `host all all all`),
#     each also as NAME_FILE naming a file that holds the value.
#   - /docker-entrypoint-initdb.d/: in name order, *.sh (run if executable,
#     else sourced), *.sql, *.sql.gz run by psql as $POSTGRES_USER on
#     $POSTGRES_DB, against a server that listens on the Unix socket only;
#     other files are ignored. An error stops the initialization.
set -Eeo pipefail

# file_env NAME [DEFAULT]: NAME from $NAME, or from the file $NAME_FILE names.
file_env() {
	local var=$1 file_var="${1}_FILE" def=${2:-}
	if [ "${!var:-}" ] && [ "${!file_var:-}" ]; then
		printf >&2 'error: both %s and %s are set (but are exclusive)\n' "$var" "$file_var"
		exit 1
	fi
	local val=$def
	if [ "${!var:-}" ]; then
		val=${!var}
	elif [ "${!file_var:-}" ]; then
		val=$(<"${!file_var}")
	fi
	export "$var"="$val"
	unset "$file_var"
}

setup_env() {
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER postgres
	file_env POSTGRES_DB "$POSTGRES_USER"
	file_env POSTGRES_INITDB_ARGS
	: "${POSTGRES_HOST_AUTH_METHOD:=}"
	DATABASE_ALREADY_EXISTS=
	if [ -s "$PGDATA/PG_VERSION" ]; then
		DATABASE_ALREADY_EXISTS=true
	fi
}

create_db_directories() {
	local user
	user=$(id -u)
	mkdir -p "$PGDATA"
	chmod 00700 "$PGDATA" || :
	mkdir -p /var/run/postgresql || :
	chmod 03775 /var/run/postgresql || :
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		[ "$user" = 0 ] && find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres '{}' +
		chmod 700 "$POSTGRES_INITDB_WALDIR"
	fi
	if [ "$user" = 0 ]; then
		find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
		find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
	fi
}

verify_minimum_env() {
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		cat >&2 <<-'EOE'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

			       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
			       connections without a password. This is *not* recommended.
		EOE
		exit 1
	fi
}

init_database_dir() {
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		set -- --waldir "$POSTGRES_INITDB_WALDIR" "$@"
	fi
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is split on purpose.
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") $POSTGRES_INITDB_ARGS "$@"
}

pg_setup_hba_conf() {
	if [ "${1:-}" = postgres ]; then shift; fi
	local auth=${POSTGRES_HOST_AUTH_METHOD:-}
	if [ -z "$auth" ]; then
		auth=$(postgres -C password_encryption "$@" 2>/dev/null || echo scram-sha-256)
	fi
	{
		printf '\n'
		if [ "$auth" = trust ]; then
			printf '# warning trust is enabled for all connections\n'
		fi
		printf 'host all all all %s\n' "$auth"
	} >>"$PGDATA/pg_hba.conf"
}

temp_server_start() {
	if [ "${1:-}" = postgres ]; then shift; fi
	set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
	PGUSER=${PGUSER:-$POSTGRES_USER} pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

temp_server_stop() {
	PGUSER=${PGUSER:-postgres} pg_ctl -D "$PGDATA" -m fast -w stop
}

process_sql() {
	local query_runner=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	if [ -n "${POSTGRES_DB:-}" ]; then
		query_runner+=(--dbname "$POSTGRES_DB")
	fi
	PGHOST= PGHOSTADDR= "${query_runner[@]}" "$@"
}

setup_db() {
	local exists
	exists=$(POSTGRES_DB=postgres process_sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<-'EOSQL'
		SELECT 1 FROM pg_database WHERE datname = :'db';
	EOSQL
	)
	if [ -z "$exists" ]; then
		POSTGRES_DB=postgres process_sql --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
			CREATE DATABASE :"db";
		EOSQL
		printf '\n'
	fi
}

process_init_files() {
	local f
	for f; do
		case "$f" in
		*.sh)
			if [ -x "$f" ]; then
				printf '%s: running %s\n' "$0" "$f"
				"$f"
			else
				printf '%s: sourcing %s\n' "$0" "$f"
				# shellcheck disable=SC1090
				. "$f"
			fi
			;;
		*.sql)
			printf '%s: running %s\n' "$0" "$f"
			process_sql -f "$f"
			printf '\n'
			;;
		*.sql.gz)
			printf '%s: running %s\n' "$0" "$f"
			gunzip -c "$f" | process_sql
			printf '\n'
			;;
		*) printf '%s: ignoring %s\n' "$0" "$f" ;;
		esac
	done
}

is_postgres_command() {
	[ "${1:-}" = postgres ]
}

main() {
	if [ "${1:0:1}" = - ]; then
		set -- postgres "$@"
	fi
	if ! is_postgres_command "$@"; then
		exec "$@"
	fi
	setup_env
	create_db_directories
	if [ "$(id -u)" = 0 ]; then
		# Again as postgres: coreutils' chroot to the same root only changes
		# the user, like the official image's gosu.
		exec chroot --userspec=postgres:postgres --skip-chdir / env HOME=/var/lib/postgresql "${BASH_SOURCE[0]}" "$@"
	fi
	if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
		verify_minimum_env
		ls /docker-entrypoint-initdb.d/ >/dev/null
		init_database_dir
		pg_setup_hba_conf "$@"
		export PGPASSWORD=${PGPASSWORD:-$POSTGRES_PASSWORD}
		temp_server_start "$@"
		setup_db
		local files=()
		if [ -d /docker-entrypoint-initdb.d ]; then
			mapfile -t files < <(find /docker-entrypoint-initdb.d -mindepth 1 -maxdepth 1 | LC_ALL=C sort)
		fi
		process_init_files "${files[@]+"${files[@]}"}"
		temp_server_stop
		unset PGPASSWORD
		printf '\nPostgreSQL init process complete; ready for start up.\n\n'
	else
		printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
	fi
	exec "$@"
}

main "$@"
