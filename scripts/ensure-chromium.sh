#!/bin/sh
# The console's browser tests drive Debian's chromium (Playwright cannot download its own here).
# As root on Debian, install it when missing; anywhere else say so, and the tests skip (or fail
# under MENJIN_STRICT_ENV=1).
set -e
CHROMIUM="${MENJIN_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium for the console's browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 chromium fonts-noto-cjk >/dev/null
else
    echo "note: $CHROMIUM is missing and this is not root on Debian; browser tests will skip"
fi
