#!/usr/bin/env bash
# Fetches the kernel users run today, for benchmarks only: Debian's linux-image-cloud-amd64 (the package
# it depends on), unpacked into $MVM_CACHE/baseline/<version>/vmlinuz, never installed on the host.
# Prints the path of the vmlinuz.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$pkg" ] || die "cannot resolve linux-image-cloud-amd64; run 'apt-get update' and retry"
deb=$(fetch_deb "$pkg")
version=$(deb_version "$deb")
out="$MVM_CACHE_DIR/baseline/$pkg-$version"
if [ ! -f "$out/vmlinuz" ]; then
  say "baseline: unpacking $pkg $version"
  tmp=$(mktemp -d "$MVM_CACHE_DIR/baseline.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
  mkdir -p "$tmp/out" "$MVM_CACHE_DIR/baseline"
  mv "$tmp"/boot/vmlinuz-* "$tmp/out/vmlinuz"
  publish_dir "$tmp/out" "$out"
fi
echo "$out/vmlinuz"
