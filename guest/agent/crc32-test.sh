#!/bin/bash
# Checks the agent's CRC-32 (which guards every file transfer) against zlib's, around the 8-byte steps.
set -euo pipefail
here=$(dirname "$0")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc -O2 -DCRC32_MAIN -o "$tmp/crc" "$here/wire.c"
for n in 0 1 7 8 9 15 16 17 1000 65536 1000003; do
  head -c "$n" /dev/urandom > "$tmp/in"
  want=$(python3 -c 'import sys, zlib; print("%08x" % zlib.crc32(open(sys.argv[1], "rb").read()))' "$tmp/in")
  got=$("$tmp/crc" < "$tmp/in")
  [ "$want" = "$got" ] || { echo "crc32 differs for $n bytes: $got, want $want" >&2; exit 1; }
done
echo "crc32: matches zlib"
