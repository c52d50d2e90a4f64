#!/usr/bin/env bash
# Sets up knarr on a fresh Debian 12 host (as root) and brings up its embedded defaults:
# a zfs pool on a sparse loop file, the managed local etcd, and a first job on the local dockerd.
# Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1; then
  echo "knarr: Node.js 20.5 or newer is needed (not found on PATH; Debian 12's nodejs package is 18, too old)" >&2
  exit 5
fi
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=5)?0:1)'; then
  echo "knarr: Node.js 20.5 or newer is needed (found $(node --version); Debian 12's nodejs package is 18)" >&2
  exit 5
fi

npm ci --no-audit --no-fund
npm run build
npm link --no-audit --no-fund

# Installs the Debian packages knarr drives and starts zfs-fuse/dockerd when they are missing.
knarr doctor --fix || echo "knarr: some prerequisites are still missing (see above); the pool and etcd may still come up" >&2

# Man pages (man-db comes with doctor --fix): man knarr, man knarr-dot, ...
bash scripts/install-man.sh
# Completion of commands, flags and your pools, dots, jobs, clusters... in bash, zsh and fish.
bash scripts/install-completions.sh

knarr pool init
knarr etcd up
knarr pool status
knarr etcd status

# A first job on the local dockerd: the busybox image knarr doctor --fix (above) imported from busybox-static
# when the engine had none (no registry needed), and a pipeline of two jobs, as knarr runs them with no agent.
# The examples in the README, docs/ and --help name the image busybox: tag ours so, unless a busybox image is there already.
if ! docker image inspect busybox >/dev/null 2>&1; then
  docker tag knarr/busybox:local busybox:latest
fi
echo "first job: echo hello | knarr job run -i busybox -- tr a-z A-Z | knarr job run -i busybox -- wc -c"
echo hello | knarr job run -i busybox -- tr a-z A-Z | knarr job run -i busybox -- wc -c
