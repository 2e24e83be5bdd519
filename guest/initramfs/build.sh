#!/usr/bin/env bash
# Builds mvm's default initramfs: mvm-init as /init, mvm-agent, and Debian's busybox-static.
# Cached under $MVM_CACHE/initramfs/<key>, key = busybox version + mvm's guest sources + recipe number.
# Prints the cache directory (holding initramfs.cpio and info.json) on stdout.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

# Bump RECIPE when a change to this script changes what it produces.
RECIPE=2
deb=$(fetch_deb busybox-static)
bbversion=$(deb_version "$deb")
key=$( { echo "$bbversion recipe $RECIPE"; cat "$GUEST_DIR"/agent/*.[ch] "$GUEST_DIR"/agent/Makefile \
  "$GUEST_DIR"/init/*.[ch] "$GUEST_DIR"/init/Makefile "$GUEST_DIR"/initramfs/build.sh; } | sha256sum | cut -c1-16)
out="$MVM_CACHE_DIR/initramfs/$key"
if [ -f "$out/info.json" ]; then echo "$out"; exit 0; fi

command -v musl-gcc >/dev/null || die "musl-gcc is missing; run scripts/setup.sh (it installs Debian's musl-tools)"
command -v cpio >/dev/null || die "cpio is missing; run scripts/setup.sh (it installs Debian's cpio)"

mkdir -p "$MVM_CACHE_DIR/initramfs"
work=$(mktemp -d "$MVM_CACHE_DIR/initramfs/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"

say "initramfs: compiling mvm-init and mvm-agent (musl, static)"
bash "$GUEST_DIR/agent/crc32-test.sh" >&2 # transfers are checked with it: it must agree with zlib
make -s -C "$GUEST_DIR/agent" OUT="$work" >&2
make -s -C "$GUEST_DIR/init" OUT="$work" >&2

say "initramfs: assembling with busybox-static $bbversion"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,dev,proc,sys,run,tmp,root,newroot,var/tmp}
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"
dpkg-deb -x "$deb" "$work/busybox"
install -m 0755 "$work/busybox/bin/busybox" "$root/bin/busybox"
# One symlink per applet, at the path busybox itself names (bin/sh, sbin/ip, usr/bin/env, ...).
"$root/bin/busybox" --list-full | while read -r applet; do
  [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
install -m 0755 "$work/mvm-init" "$root/init"
install -m 0755 "$work/mvm-agent" "$root/sbin/mvm-agent"
cat > "$root/etc/passwd" <<'TXT'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
TXT
cat > "$root/etc/group" <<'TXT'
root:x:0:
tty:x:5:
nogroup:x:65534:
TXT
echo "127.0.0.1 localhost" > "$root/etc/hosts"

stage="$work/out"; mkdir -p "$stage"
# Owned by root inside the guest whoever builds it; sorted so the archive is reproducible.
# Not compressed: the kernel unpacks a plain cpio in ~70 ms under TCG against ~170 ms for gzip (lz4 is
# no faster there); the ~1.1 MB it saves on disk is not worth 100 ms on every cold boot (docs/boot-time.md).
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet --reproducible) > "$stage/initramfs.cpio"
cat > "$stage/info.json" <<JSON
{"busyboxVersion":"$bbversion","key":"$key","bytes":$(stat -c %s "$stage/initramfs.cpio"),"agentBytes":$(stat -c %s "$work/mvm-agent"),"initBytes":$(stat -c %s "$work/mvm-init")}
JSON
publish_dir "$stage" "$out"
say "initramfs: $(stat -c %s "$out/initramfs.cpio") bytes -> $out"
echo "$out"
