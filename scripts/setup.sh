#!/usr/bin/env bash
# Sets up a Debian 12 host for mvm, idempotently: the Debian packages the host runs, the Node.js
# dependencies, the TypeScript build, the guest kernel + initramfs (built from Debian sources and cached
# under $MVM_CACHE, /var/cache/mvm as root), and an `mvm` command on the PATH. Each step is skipped when
# already done; progress goes to stderr.
# When nothing it checks has changed since its last full run (see scripts/lib/setup-stamp.sh) it returns at
# once; MVM_SETUP_FULL=1 makes it check everything anyway.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
source scripts/lib/setup-stamp.sh
mvm_setup_fresh "$root" && exit 0

step() { printf '==> %s\n' "$*" >&2; }
fail() { printf 'mvm setup: error: %s\n' "$*" >&2; exit 1; }

# The stamp's time is taken now, before anything is looked at: whatever changes from here on is newer
# than it, so the next run checks again.
mvm_setup_stamp "$root"; stamp=$REPLY
mkdir -p "${stamp%/*}"
began=$(mktemp "$stamp.began.XXXXXX")
trap 'rm -f "$began"' EXIT

# Node.js: Debian 12's own nodejs is 18, too old.
command -v node >/dev/null || fail "Node.js >= 20 is required and not installed; install it (e.g. from NodeSource or nvm) and retry"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || fail "Node.js >= 20 is required, this is $(node --version); install a newer Node.js and retry"

# Debian packages the host itself runs or builds with. Guest-side packages (busybox-static, the kernel
# source) are fetched by guest/build.sh with apt-get download, never installed.
packages=(
  qemu-system-x86 qemu-utils  # the hypervisor and qemu-img
  e2fsprogs cpio xz-utils     # images and the initramfs
  debootstrap                 # mvm image build debian
  nftables iproute2 procps    # bridged networks: NAT, bridges and taps (sysctl); pgrep in tests
  musl-tools make gcc         # mvm-init and mvm-agent, static
  g++ python3                 # node-gyp builds better-sqlite3 (no prebuilt binaries are fetched); python3 checks the agent CRC
  tmux                        # the test of mvm exec -it in a real terminal
  bubblewrap                  # the jail: namespaces and a root of its own for each QEMU (src/jail/sandbox.ts)
  chromium                    # the web dashboard's browser tests (playwright-core drives Debian's build; none is downloaded)
  flex bison bc libelf-dev libssl-dev patch  # the guest kernel build (patch applies guest/kernel/patches)
)
apt_lists_present() { [ -n "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; }
sudo=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo="sudo"; fi
declare -A have=()
while read -r p status; do
  [ "$status" != installed ] || have[$p]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)
missing=()
for p in "${packages[@]}"; do [ -n "${have[$p]:-}" ] || missing+=("$p"); done
installed_now=""
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || [ -n "$sudo" ] || fail "these Debian packages are missing and installing them needs root: ${missing[*]}"
  step "installing Debian packages: ${missing[*]}"
  # The package lists are refreshed only when there are none, or when they are too old to install from.
  apt_lists_present || { step "fetching Debian package lists"; $sudo apt-get update -q >&2; }
  install() { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
  install || { step "refreshing Debian package lists and retrying"; $sudo apt-get update -q >&2; install; }
  installed_now=1
fi
# guest/build.sh downloads guest packages with apt-get download, which needs package lists.
if ! apt_lists_present; then
  step "fetching Debian package lists"
  $sudo apt-get update -q >&2
  installed_now=1
fi
# Installing changed dpkg's status and the apt lists, and nothing read after this depends on them: the
# stamp's time moves past our own changes so that the next run is not a full check because of them.
[ -z "$installed_now" ] || touch "$began"

# npm dependencies, reinstalled when the lockfile changes.
lock_hash=$(sha256sum package-lock.json | cut -c1-16)
if [ "$(cat node_modules/.mvm-lock 2>/dev/null)" != "$lock_hash" ]; then
  step "installing npm dependencies"
  npm ci --no-audit --no-fund >&2
  node -e 'require("better-sqlite3")' 2>/dev/null || { step "building better-sqlite3 from source"; npm rebuild better-sqlite3 >&2; }
  echo "$lock_hash" > node_modules/.mvm-lock
fi

# TypeScript build, redone when a source changes. dist/src and dist/test are emptied first so that a
# moved or deleted source leaves no stale .js (or stale test) behind.
src_hash=$(find src test tsconfig.json package.json -type f -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)
if [ "$(cat dist/.mvm-src 2>/dev/null)" != "$src_hash" ] || [ ! -f dist/src/cli/main.js ]; then
  step "compiling TypeScript"
  rm -rf dist/src dist/test dist/.mvm-src
  npx tsc -p tsconfig.json >&2
  echo "$src_hash" > dist/.mvm-src
fi

# The web dashboard's bundle (dashboard/: esbuild, from node_modules), which the daemon serves from
# dist/dashboard; redone when its sources or the lockfile change, as the TypeScript build is.
dash_hash=$(find dashboard -type f -print0 | sort -z | xargs -0 cat | cat - package-lock.json | sha256sum | cut -c1-16)
if [ "$(cat dist/dashboard/.mvm-src 2>/dev/null)" != "$dash_hash" ] || [ ! -f dist/dashboard/app.js ]; then
  step "bundling the web dashboard"
  rm -rf dist/dashboard
  node dashboard/build.mjs dist/dashboard >&2
  echo "$dash_hash" > dist/dashboard/.mvm-src
fi

# Guest kernel and initramfs: 5 to 15 minutes the first time on 2 cores, then a cache hit.
manifest=$(MVM_GUEST_REFRESH=1 bash guest/build.sh)

# An `mvm` command on the PATH that runs this checkout's scripts/mvm. MVM_BIN_DIR picks the folder
# (default /usr/local/bin as root, else ~/.local/bin); MVM_BIN_DIR=none installs nothing.
install_command() {
  local dir=${MVM_BIN_DIR:-} target marker other quoted
  if [ -z "$dir" ]; then if [ "$(id -u)" = 0 ]; then dir=/usr/local/bin; else dir=$HOME/.local/bin; fi; fi
  [ "$dir" != none ] || return 0
  target="$dir/mvm"
  marker="# mvm-checkout: "
  if [ -e "$target" ] || [ -L "$target" ]; then
    other=$(sed -n "s/^$marker//p" "$target" 2>/dev/null | head -n1)
    [ "$other" = "$root" ] && return 0
    if [ -z "$other" ]; then
      step "not installing $target: something else is there already (run this checkout as $root/scripts/mvm)"; return 0
    elif [ -x "$other/scripts/mvm" ]; then
      step "not replacing $target: it runs the checkout at $other (remove it to have it run $root)"; return 0
    fi
  fi
  mkdir -p "$dir" || { step "cannot create $dir: no mvm command on the PATH"; return 0; }
  quoted="'${root//\'/\'\\\'\'}'"
  printf '#!/bin/sh\n%s%s\n# Written by that checkout'"'"'s scripts/setup.sh: runs its scripts/mvm.\nexec %s/scripts/mvm "$@"\n' \
    "$marker" "$root" "$quoted" > "$target.tmp.$$" && chmod 755 "$target.tmp.$$" && mv "$target.tmp.$$" "$target" \
    || { rm -f "$target.tmp.$$"; step "cannot write $target: no mvm command on the PATH"; return 0; }
  step "installed the mvm command: $target runs $root/scripts/mvm"
  case ":$PATH:" in *":$dir:"*) ;; *) step "$dir is not on your PATH: add it to run mvm by name" ;; esac
}
install_command

# All checks passed: write the stamp, with the time taken before they began.
{
  echo "mvm-setup 1"
  echo "node $(command -v node)"
  grep -o '"\(vmlinux\|bzImage\|path\)":"[^"]*"' <<<"$manifest" | cut -d'"' -f4 | sed 's/^/file /'
} > "$stamp.tmp.$$"
touch -r "$began" "$stamp.tmp.$$"
mv "$stamp.tmp.$$" "$stamp"
