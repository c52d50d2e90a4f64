#!/usr/bin/env bash
# Installs knarr's completion for bash, zsh and fish where each shell finds it without set-up, under ROOT
# (default /): bash-completion's and zsh's site directories in /usr/local/share, fish's in /etc/fish. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-}"
install -D -m 0644 completions/knarr.bash "$root/usr/local/share/bash-completion/completions/knarr"
install -D -m 0644 completions/_knarr "$root/usr/local/share/zsh/site-functions/_knarr"
install -D -m 0644 completions/knarr.fish "$root/etc/fish/completions/knarr.fish"
