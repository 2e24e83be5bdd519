#!/usr/bin/env bash
# Builds mvm's guest kernel from Debian's linux-source-6.1, the patches in patches/ (each says why and what
# it saves) and the config fragment beside this script. Cached under $MVM_CACHE/kernel/<key>, key = source
# version + patches + fragment + recipe number, so a machine builds each combination once. Prints the cache directory (holding vmlinux, bzImage, config, info.json) on stdout.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
here="$GUEST_DIR/kernel"

deb=$(fetch_deb linux-source-6.1)
version=$(deb_version "$deb")
# Bump RECIPE when a change to this script changes what it produces (progress output does not count).
RECIPE=2
patches=("$here"/patches/*.patch)
key=$( { echo "$version recipe $RECIPE"; cat "${patches[@]}" "$here/mvm.config"; } | sha256sum | cut -c1-16)
out="$MVM_CACHE_DIR/kernel/$key"
if [ -f "$out/info.json" ]; then echo "$out"; exit 0; fi

for tool in make gcc flex bison bc xz patch; do
  command -v "$tool" >/dev/null || die "'$tool' is missing; run scripts/setup.sh (it installs the kernel build tools)"
done
[ -f /usr/include/libelf.h ] || die "libelf headers are missing; install Debian's libelf-dev"

work="$MVM_CACHE_DIR/kernel/.build-$key"
rm -rf "$work"; mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

say "kernel: unpacking linux-source $version (about 30 s)"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" --wildcards '*/linux-source-6.1.tar.xz'
tar -xJf "$work"/usr/src/linux-source-6.1.tar.xz -C "$work"
src="$work/linux-source-6.1"

# A patch that no longer applies exactly (a new Debian source version) stops the build: no fuzz, no guess.
for p in "${patches[@]}"; do
  say "kernel: applying $(basename "$p")"
  patch -d "$src" -p1 --forward --batch --fuzz=0 --quiet < "$p" >"$work/patch.log" 2>&1 \
    || { cat "$work/patch.log" >&2; die "kernel patch $(basename "$p") does not apply to linux-source $version; update it (see guest/kernel/patches/README.md)"; }
done

say "kernel: configuring (tinyconfig + guest/kernel/mvm.config)"
make -s -C "$src" tinyconfig >/dev/null
"$src"/scripts/kconfig/merge_config.sh -m -O "$src" "$src/.config" "$here/mvm.config" >"$work/config.log" 2>&1
make -s -C "$src" olddefconfig >>"$work/config.log" 2>&1

# Every line of the fragment must have survived: a silently dropped option is a broken guest.
missing=0
while IFS= read -r line; do
  case "$line" in
    CONFIG_*=*) grep -qxF "$line" "$src/.config" || { say "kernel: config lost: $line"; missing=1; } ;;
    "# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}
      grep -q "^$opt=[ym]" "$src/.config" && { say "kernel: config forced on: $opt"; missing=1; } ;;
  esac
done < "$here/mvm.config"
[ "$missing" = 0 ] || die "kernel config fragment does not apply cleanly to $version (see lines above)"

jobs=$(( $(nproc) + 1 ))
say "kernel: compiling with $jobs jobs (5 to 15 minutes on 2 cores; progress every 250 files)"
set +e
make -C "$src" -j"$jobs" vmlinux bzImage 2>&1 | tee "$work/build.log" | awk -v start="$start" '
  /^  (CC|AS|LD|AR)/ { n++; if (n % 250 == 0) { printf "mvm-guest: kernel: %d files compiled, %d s\n", n, systime() - start > "/dev/stderr"; fflush("/dev/stderr") } }'
status=${PIPESTATUS[0]}
set -e
if [ "$status" != 0 ]; then
  tail -n 30 "$work/build.log" >&2
  die "kernel build failed (exit $status); the whole log was in $work/build.log"
fi

stage="$work/out"; mkdir -p "$stage"
cp "$src/vmlinux" "$stage/vmlinux"
strip --strip-debug "$stage/vmlinux" 2>/dev/null || true
cp "$src/arch/x86/boot/bzImage" "$stage/bzImage"
cp "$src/.config" "$stage/config"
cp "$work/build.log" "$stage/build.log"
release=$(cat "$src/include/config/kernel.release")
hz=$(sed -n 's/^CONFIG_HZ=\([0-9]*\)$/\1/p' "$src/.config")
seconds=$(( $(date +%s) - start ))
cat > "$stage/info.json" <<JSON
{"release":"$release","sourceVersion":"$version","hz":$hz,"key":"$key","buildSeconds":$seconds,"patches":[$(for p in "${patches[@]}"; do printf '"%s",' "$(basename "$p" .patch)"; done | sed 's/,$//')]}
JSON
mkdir -p "$MVM_CACHE_DIR/kernel"
publish_dir "$stage" "$out"
say "kernel: built $release in ${seconds} s -> $out"
echo "$out"
