#!/usr/bin/env bash
# Builds (or finds in the cache) everything that runs inside an mvm guest and prints a JSON manifest of
# the artefacts on stdout; progress goes to stderr. Idempotent: a second run only checks the cache.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

kernel=$(bash "$GUEST_DIR/kernel/build.sh")
initramfs=$(bash "$GUEST_DIR/initramfs/build.sh")
cat <<JSON
{"kernel":{"dir":"$kernel","vmlinux":"$kernel/vmlinux","bzImage":"$kernel/bzImage","info":$(cat "$kernel/info.json")},
 "initramfs":{"dir":"$initramfs","path":"$initramfs/initramfs.cpio.gz","info":$(cat "$initramfs/info.json")}}
JSON
