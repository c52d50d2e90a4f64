#!/usr/bin/env bash
# Installs knarr's man pages (man knarr, man knarr-dot, ...) under MANROOT/man1 (default /usr/local/share/man),
# dropping knarr pages that no longer exist, then refreshes the man index when mandb is there. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-/usr/local/share/man}"
mkdir -p "$root/man1"
for page in "$root"/man1/knarr.1 "$root"/man1/knarr-*.1; do
  [ -e "$page" ] && [ ! -e "man/$(basename "$page")" ] && rm -f "$page"
done
install -m 0644 man/*.1 "$root/man1/"
if command -v mandb >/dev/null 2>&1; then mandb -q "$root" >/dev/null 2>&1 || true; fi
