#!/usr/bin/env bash
# Sets up a Debian 12 host for mvm, idempotently: the Debian packages the host runs, the Node.js
# dependencies, the TypeScript build, and the guest kernel + initramfs (built from Debian sources and cached
# under $MVM_CACHE, /var/cache/mvm as root). Each step is skipped when already done; progress goes to stderr.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '==> %s\n' "$*" >&2; }
fail() { printf 'mvm setup: error: %s\n' "$*" >&2; exit 1; }

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
  flex bison bc libelf-dev libssl-dev  # the guest kernel build
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || fail "these Debian packages are missing and installing them needs root: ${missing[*]}"
    sudo="sudo"
  fi
  step "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
# guest/build.sh downloads guest packages with apt-get download, which needs package lists.
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  step "fetching Debian package lists"
  ${sudo:-} apt-get update -q >&2
fi

# npm dependencies, reinstalled when the lockfile changes.
lock_hash=$(sha256sum package-lock.json | cut -c1-16)
if [ "$(cat node_modules/.mvm-lock 2>/dev/null)" != "$lock_hash" ]; then
  step "installing npm dependencies"
  npm ci --no-audit --no-fund >&2
  node -e 'require("better-sqlite3")' 2>/dev/null || { step "building better-sqlite3 from source"; npm rebuild better-sqlite3 >&2; }
  echo "$lock_hash" > node_modules/.mvm-lock
fi

# TypeScript build, redone when a source changes.
src_hash=$(find src test tsconfig.json package.json -type f -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)
if [ "$(cat dist/.mvm-src 2>/dev/null)" != "$src_hash" ]; then
  step "compiling TypeScript"
  npx tsc -p tsconfig.json >&2
  echo "$src_hash" > dist/.mvm-src
fi

# Guest kernel and initramfs: about 5 minutes the first time on 2 cores, then a cache hit.
MVM_GUEST_REFRESH=1 bash guest/build.sh > /dev/null
