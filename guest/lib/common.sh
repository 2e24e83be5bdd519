# Shared by the guest build scripts: cache location, progress output, fetching guest-side Debian packages.
# Guest packages are fetched with `apt-get download` and unpacked into the cache, never installed on the host.

set -euo pipefail

# Same rule as src/paths.ts: $MVM_CACHE, else /var/cache/mvm as root, else $XDG_CACHE_HOME/mvm.
mvm_cache_dir() {
  if [ -n "${MVM_CACHE:-}" ]; then echo "$MVM_CACHE"
  elif [ "$(id -u)" = 0 ]; then echo /var/cache/mvm
  else echo "${XDG_CACHE_HOME:-$HOME/.cache}/mvm"; fi
}

MVM_CACHE_DIR=$(mvm_cache_dir)
GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Progress goes to stderr so that stdout stays machine-readable.
say() { printf 'mvm-guest: %s\n' "$*" >&2; }
die() { printf 'mvm-guest: error: %s\n' "$*" >&2; exit 1; }

# Short content hash of files and strings, used as cache keys.
content_key() { cat "$@" | sha256sum | cut -c1-16; }

# fetch_deb PACKAGE -> prints the path of the cached .deb of the candidate version.
# Falls back to a cached copy when apt cannot answer (offline or no package lists).
fetch_deb() {
  local pkg=$1 dir="$MVM_CACHE_DIR/debs" version file
  mkdir -p "$dir"
  version=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    file=$(ls -t "$dir/${pkg}_"*.deb 2>/dev/null | head -n1 || true)
    [ -n "$file" ] || die "Debian package $pkg is unknown to apt and not cached; run 'apt-get update' and retry"
    echo "$file"; return
  fi
  # apt-get download names files with the epoch's colon escaped as %3a.
  file="$dir/${pkg}_${version//:/%3a}_$(dpkg-deb --version >/dev/null && dpkg --print-architecture).deb"
  [ -f "$file" ] || file="$dir/${pkg}_${version//:/%3a}_all.deb"
  if [ ! -f "$file" ]; then
    say "downloading Debian package $pkg $version"
    (cd "$dir" && apt-get download -q "$pkg=$version" >&2) || die "could not download $pkg; check apt sources"
    file=$(ls -t "$dir/${pkg}_${version//:/%3a}_"*.deb | head -n1)
  fi
  echo "$file"
}

# deb_version FILE -> the package version recorded inside the .deb.
deb_version() { dpkg-deb -f "$1" Version; }

# Write to a temporary path then rename, so a cache entry is either whole or absent.
publish_dir() { # TMPDIR FINALDIR
  rm -rf "$2.old"; [ -e "$2" ] && mv "$2" "$2.old"; mv "$1" "$2"; rm -rf "$2.old"
}
