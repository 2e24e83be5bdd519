# The set-up stamp: lets scripts/mvm (and scripts/setup.sh itself) skip the whole set-up check when nothing
# it checks has changed since the last full check. Sourced, never run; bash builtins and one `find`, so the
# fast path costs a few milliseconds.
#
# One stamp per checkout and cache directory: dist/.mvm-setup/<cache dir with / as %>. Its mtime is the
# moment the last full check began (anything changed after that is newer than it); its lines are
#   mvm-setup 1
#   node <the node binary the check ran with>
#   file <an artefact that must still exist>   (the guest kernel and initramfs in the cache)
# It is stale, and the full check runs, when any of these holds:
#   - MVM_SETUP_FULL is set, the stamp is missing, or its format is not this one
#   - `node` on PATH is another binary, or that binary is newer than the stamp
#   - a file under src/, test/ or guest/ (the TypeScript and guest inputs) is newer than the stamp, or a
#     folder there is (a file was added, removed or renamed)
#   - package.json, package-lock.json, tsconfig.json, scripts/setup.sh or this file is newer
#   - dpkg's status file is newer (a Debian package was installed or removed), or the apt lists folder is
#     (new package versions may be there for the guest)
#   - the compiled CLI, the npm install marker or an artefact it names is gone
# mtimes are trusted: a file changed with its mtime set back (cp -p, tar, rsync -t of older content)
# goes unnoticed; run with MVM_SETUP_FULL=1 then.

# mvm_cache_dir_fast: the same rule as guest/lib/common.sh and src/host/paths.ts, without forking.
mvm_cache_dir_fast() {
  if [ -n "${MVM_CACHE:-}" ]; then REPLY=$MVM_CACHE
  elif [ "$EUID" = 0 ]; then REPLY=/var/cache/mvm
  else REPLY=${XDG_CACHE_HOME:-$HOME/.cache}/mvm; fi
}

# mvm_setup_stamp ROOT: sets REPLY to the stamp's path.
mvm_setup_stamp() {
  mvm_cache_dir_fast
  REPLY="$1/dist/.mvm-setup/${REPLY//\//%}"
}

# mvm_setup_fresh ROOT: succeeds when the stamp says the last full check still holds.
mvm_setup_fresh() {
  local root=$1 stamp node f line found
  [ -z "${MVM_SETUP_FULL:-}" ] || return 1
  mvm_setup_stamp "$root"; stamp=$REPLY
  [ -f "$stamp" ] || return 1
  hash node 2>/dev/null || return 1
  node=${BASH_CMDS[node]}
  local -a lines
  mapfile -t lines < "$stamp"
  [ "${lines[0]:-}" = "mvm-setup 1" ] && [ "${lines[1]:-}" = "node $node" ] || return 1
  for line in "${lines[@]:2}"; do
    [ "${line%% *}" = file ] && [ -e "${line#file }" ] || return 1
  done
  [ -f "$root/dist/src/cli/main.js" ] && [ -f "$root/node_modules/.mvm-lock" ] || return 1
  for f in "$node" "$root/package.json" "$root/package-lock.json" "$root/tsconfig.json" "$root/scripts/setup.sh" \
    "$root/scripts/lib/setup-stamp.sh" /var/lib/dpkg/status /var/lib/apt/lists; do
    [ "$f" -nt "$stamp" ] && return 1
  done
  found=$(find "$root/src" "$root/test" "$root/guest" -newer "$stamp" -print -quit) || return 1
  [ -z "$found" ]
}
