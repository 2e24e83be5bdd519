#!/bin/bash
# Checks the agent's SHA-256 against coreutils' sha256sum on inputs around the block boundaries.
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc -O2 -DSHA256_MAIN -o "$tmp/sha" "$(dirname "$0")/sha256.c"
for n in 0 1 55 56 63 64 65 119 120 1000 65536 1000003; do
  head -c "$n" /dev/urandom > "$tmp/in"
  want=$(sha256sum < "$tmp/in" | cut -d' ' -f1)
  got=$("$tmp/sha" < "$tmp/in")
  [ "$want" = "$got" ] || { echo "sha256 differs for $n bytes: $got, want $want" >&2; exit 1; }
done
echo "sha256: matches sha256sum"
