#!/usr/bin/env bash
# postgres19.sh prints the directory that holds PostgreSQL 19's server binaries
# (postgres, initdb, pg_basebackup, pg_ctl, psql), making them available first
# if needed.
#
# Where it looks, in order:
#   1. $PGWAIT_PG_BIN, if it holds a PostgreSQL 19 postgres;
#   2. pg_config --bindir, postgres on PATH, /usr/lib/postgresql/19/bin;
#   3. its own cache ($PGWAIT_CACHE_DIR, default /var/cache/pgwait when run as
#      root, else ${XDG_CACHE_HOME:-~/.cache}/pgwait).
# Failing all of these it downloads Debian experimental's postgresql-19 and the
# shared libraries it needs from Debian sid into the cache, without installing
# anything on the system: a private apt configuration, `apt-get download`,
# `dpkg-deb -x` into one prefix, then patchelf points every binary at the
# prefix's own loader and libraries. A second run with the cache present
# returns at once.
#
# scripts/postgres19 runs this file; package pgtest embeds it and runs it when
# it finds no PostgreSQL 19 itself, so `go test ./...` works on a fresh machine.
#
# Needs: Linux on x86_64 with apt-get and dpkg-deb (Debian, Ubuntu). Elsewhere,
# install PostgreSQL 19 yourself and set PGWAIT_PG_BIN, or use Docker.
set -euo pipefail

want_major=19

log() { printf 'postgres19: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# is_pg19 DIR: DIR holds a runnable postgres of major version 19.
is_pg19() {
  local dir=$1 version
  [ -x "$dir/postgres" ] || return 1
  version=$("$dir/postgres" --version 2>/dev/null) || return 1
  [[ $version =~ \(PostgreSQL\)\ ${want_major}([^0-9]|$) ]]
}

found() { printf '%s\n' "$1"; exit 0; }

if [ -n "${PGWAIT_PG_BIN:-}" ]; then
  is_pg19 "$PGWAIT_PG_BIN" || die "PGWAIT_PG_BIN=$PGWAIT_PG_BIN does not hold a PostgreSQL $want_major postgres binary; unset it or point it at PostgreSQL $want_major's bin directory"
  found "$PGWAIT_PG_BIN"
fi
if command -v pg_config >/dev/null 2>&1; then
  dir=$(pg_config --bindir 2>/dev/null || true)
  [ -n "$dir" ] && is_pg19 "$dir" && found "$dir"
fi
if command -v postgres >/dev/null 2>&1; then
  dir=$(dirname "$(readlink -f "$(command -v postgres)")")
  is_pg19 "$dir" && found "$dir"
fi
is_pg19 /usr/lib/postgresql/$want_major/bin && found /usr/lib/postgresql/$want_major/bin

if [ "$(id -u)" = 0 ]; then
  default_cache=/var/cache/pgwait
else
  default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/pgwait
fi
cache=${PGWAIT_CACHE_DIR:-$default_cache}
prefix=$cache/postgres$want_major
bindir=$prefix/usr/lib/postgresql/$want_major/bin

if [ -f "$prefix/.complete" ] && is_pg19 "$bindir"; then
  found "$bindir"
fi

# Several test binaries (go test ./... runs packages in parallel) may get here
# at once: one fetches, the others wait for it and then use its result.
mkdir -p "$cache"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/.lock"
  flock 9
  if [ -f "$prefix/.complete" ] && is_pg19 "$bindir"; then
    found "$bindir"
  fi
fi

# Nothing usable is installed: fetch it.
[ "$(uname -s)" = Linux ] || die "no PostgreSQL $want_major found, and fetching it works on Linux only (this is $(uname -s)). Install PostgreSQL $want_major and set PGWAIT_PG_BIN to its bin directory, or use Docker (image postgres:$want_major)."
[ "$(uname -m)" = x86_64 ] || die "no PostgreSQL $want_major found, and fetching it works on x86_64 only (this is $(uname -m)). Install PostgreSQL $want_major and set PGWAIT_PG_BIN to its bin directory, or use Docker (image postgres:$want_major)."
for tool in apt-get apt-cache dpkg-deb; do
  command -v $tool >/dev/null 2>&1 || die "no PostgreSQL $want_major found, and fetching it needs $tool (Debian or Ubuntu). Install PostgreSQL $want_major and set PGWAIT_PG_BIN to its bin directory, or use Docker (image postgres:$want_major)."
done
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f $keyring ] || die "no PostgreSQL $want_major found, and fetching it from Debian needs $keyring (package debian-archive-keyring). Install that, or install PostgreSQL $want_major and set PGWAIT_PG_BIN."

mirror=${PGWAIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$cache/download
rm -rf "$work" "$prefix"
mkdir -p "$work"/{lists/partial,archives/partial,parts,debs} "$prefix"

cat >"$work/sources.list" <<LIST
deb [signed-by=$keyring] $mirror sid main
deb [signed-by=$keyring] $mirror experimental main
LIST
cat >"$work/apt.conf" <<CONF
Dir::Etc::SourceList "$work/sources.list";
Dir::Etc::SourceParts "$work/parts";
Dir::Etc::Parts "$work/parts";
Dir::Etc::Preferences "$work/parts/none";
Dir::Etc::PreferencesParts "$work/parts";
Dir::State::Lists "$work/lists";
Dir::State::status "/dev/null";
Dir::Cache "$work";
Dir::Cache::Archives "$work/archives";
Acquire::Check-Valid-Until "false";
Acquire::Languages "none";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Debug::NoLocking "true";
APT::Sandbox::User "root";
CONF
export APT_CONFIG=$work/apt.conf

log "fetching Debian package lists (sid, experimental)"
apt-get -qq update >&2 || die "apt-get update failed for the Debian sid/experimental lists; check access to $mirror (set PGWAIT_DEBIAN_MIRROR for another mirror)"

# The version experimental carries, e.g. 19~rc1-1.
pgver=$(apt-cache madison postgresql-$want_major | awk -F'|' '/experimental/ {gsub(/ /, "", $2); print $2; exit}')
[ -n "$pgver" ] || pgver=$(apt-cache madison postgresql-$want_major | awk -F'|' '{gsub(/ /, "", $2); print $2; exit}')
[ -n "$pgver" ] || die "Debian has no postgresql-$want_major package in sid or experimental; install PostgreSQL $want_major yourself and set PGWAIT_PG_BIN"
log "postgresql-$want_major $pgver"

roots=("postgresql-$want_major=$pgver" "postgresql-client-$want_major=$pgver" "libpq5=$pgver" patchelf)

# Shared libraries only: walk the dependency graph through lib* packages,
# leaving out the ones that are programs, Perl or data rather than libraries
# the binaries load.
is_wanted_lib() {
  case $1 in
    lib*-perl|libperl*|libc-bin|libc-l10n|libc-gconv-modules-extra|libpam-modules*|libsystemd-shared|libdebconfclient*|libdebian-installer*|libsemanage*|libaudit-common) return 1 ;;
    lib*|gcc-*-base) return 0 ;;
  esac
  return 1
}
declare -A seen=()
queue=()
for r in "${roots[@]}"; do queue+=("$r"); done
pkgs=()
while [ ${#queue[@]} -gt 0 ]; do
  next=()
  deps=$(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances "${queue[@]}" 2>/dev/null |
    awk '/^ *\|?(Pre)?Depends:/ {print $2}' | tr -d '<>' | sed 's/:any$//' | sort -u)
  for q in "${queue[@]}"; do pkgs+=("$q"); done
  for d in $deps; do
    [ -n "${seen[$d]:-}" ] && continue
    seen[$d]=1
    is_wanted_lib "$d" && next+=("$d")
  done
  queue=("${next[@]+"${next[@]}"}")
done

log "downloading ${#pkgs[@]} packages"
( cd "$work/debs" && apt-get -qq download "${pkgs[@]}" >&2 ) || die "apt-get download failed; check access to $mirror"

for deb in "$work"/debs/*.deb; do
  dpkg-deb -x "$deb" "$prefix"
done

loader=$prefix/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
[ -e "$loader" ] || loader=$prefix/usr/lib64/ld-linux-x86-64.so.2
[ -e "$loader" ] || die "the downloaded libc6 has no ld-linux-x86-64.so.2; the Debian packaging changed, please report"
libpath=$prefix/usr/lib/x86_64-linux-gnu:$prefix/lib/x86_64-linux-gnu:$prefix/usr/lib/postgresql/$want_major/lib
patchelf_bin=("$loader" --library-path "$libpath" "$prefix/usr/bin/patchelf")

# Every ELF executable and shared object of PostgreSQL: a DT_RPATH (not RUNPATH)
# so that modules PostgreSQL dlopens (libpqwalreceiver) resolve the same way.
n=0
while IFS= read -r -d '' f; do
  head -c 4 "$f" 2>/dev/null | grep -q $'\x7fELF' || continue
  if "${patchelf_bin[@]}" --print-interpreter "$f" >/dev/null 2>&1; then
    "${patchelf_bin[@]}" --set-interpreter "$loader" "$f"
  fi
  "${patchelf_bin[@]}" --force-rpath --set-rpath "$libpath" "$f"
  n=$((n + 1))
done < <(find "$prefix/usr/lib/postgresql" -type f -print0)
log "patched $n binaries"

is_pg19 "$bindir" || die "the downloaded postgres does not run: $("$bindir/postgres" --version 2>&1 | head -3)"
for tool in initdb pg_basebackup pg_ctl psql; do
  "$bindir/$tool" --version >/dev/null 2>&1 || die "the downloaded $tool does not run: $("$bindir/$tool" --version 2>&1 | head -3)"
done
rm -rf "$work"
chmod -R a+rX "$prefix"
touch "$prefix/.complete"
log "PostgreSQL $want_major ready in $bindir"
found "$bindir"
