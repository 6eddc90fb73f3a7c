#!/bin/sh
# Install the Debian packages the tests need (`scripts/ensure-debs.sh PKG...`), only as root on
# Debian and only those missing; elsewhere it does nothing and the tests that need them skip.
set -eu
[ "$#" -gt 0 ] || exit 0
command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 || exit 0
[ "$(id -u)" -eq 0 ] || exit 0
missing=""
for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $pkg"
done
[ -n "$missing" ] || exit 0
echo "ensure-debs: installing$missing"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
