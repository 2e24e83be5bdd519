#!/usr/bin/env bash
# Builds (or finds in the cache) everything that runs inside an mvm guest and prints a JSON manifest of
# the artefacts on stdout; progress goes to stderr. Idempotent.
# Fast path: a manifest keyed by the guest sources answers without asking apt (which takes ~0.4 s a
# package); MVM_GUEST_REFRESH=1 (set by scripts/setup.sh) also checks for newer Debian package versions.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

srckey=$(find "$GUEST_DIR" -type f ! -name '*.o' -print0 | LC_ALL=C sort -z | xargs -0 cat | sha256sum | cut -c1-16)
manifest="$MVM_CACHE_DIR/guest/$srckey.json"
if [ -z "${MVM_GUEST_REFRESH:-}" ] && [ -f "$manifest" ]; then
  # Trust it only while every file it names is still there.
  ok=1
  for f in $(grep -o '"\(vmlinux\|bzImage\|path\)":"[^"]*"' "$manifest" | cut -d'"' -f4); do [ -f "$f" ] || ok=0; done
  if [ "$ok" = 1 ]; then cat "$manifest"; exit 0; fi
fi

# One build at a time per cache: two at once (two test runs) would build in the same work folders and
# delete each other's files. The second waits, then finds what the first built.
mkdir -p "$MVM_CACHE_DIR"
exec 9>"$MVM_CACHE_DIR/.guest-build.lock"
flock 9
kernel=$(bash "$GUEST_DIR/kernel/build.sh")
initramfs=$(bash "$GUEST_DIR/initramfs/build.sh")
mkdir -p "$MVM_CACHE_DIR/guest"
tmp=$(mktemp "$manifest.XXXXXX")
cat > "$tmp" <<JSON
{"kernel":{"dir":"$kernel","vmlinux":"$kernel/vmlinux","bzImage":"$kernel/bzImage","info":$(cat "$kernel/info.json")},
 "initramfs":{"dir":"$initramfs","path":"$initramfs/initramfs.cpio","info":$(cat "$initramfs/info.json")}}
JSON
mv "$tmp" "$manifest"
cat "$manifest"
