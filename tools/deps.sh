#!/bin/sh
# deps.sh [--check] PKG... — make sure the Debian packages zhiku needs are
# installed. With --check, only report (exit 1 if something is missing).
# Installs with apt-get when run as root; otherwise prints the exact command.
set -e
check=0
if [ "$1" = "--check" ]; then check=1; shift; fi
missing=""
for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    [ $check = 1 ] || echo "deps: all Debian packages present"
    exit 0
fi
if [ $check = 1 ]; then
    echo "deps: missing:$missing"
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages:$missing"
    echo "deps: run as root:  apt-get update && apt-get install -y --no-install-recommends$missing"
    exit 1
fi
echo "deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q || true
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
