# IPFS engines for the content tests:
# - js-ipfs (npm ipfs@0.66.1, lock committed in tools/ipfs): the real IPFS RPC daemon the
#   Kubo adapter tests start offline on loopback (tests/fixtures/jsipfs.py);
# - Debian's ipfs-cid (/usr/bin/ipfs_cid): a second opinion on CIDv0 in the importer tests.
# Sourced under `set -euo pipefail`; idempotent.
_ipfs_stamp="${CI_STATE_DIR:-.ci-state}/ipfs-npm.sha256"
_ipfs_lock_sum="$(sha256sum tools/ipfs/package-lock.json | cut -d' ' -f1)"
if [ ! -x tools/ipfs/node_modules/.bin/jsipfs ] || [ "$(cat "$_ipfs_stamp" 2>/dev/null)" != "$_ipfs_lock_sum" ]; then
  npm ci --prefix tools/ipfs --no-audit --no-fund
  mkdir -p "$(dirname "$_ipfs_stamp")"
  echo "$_ipfs_lock_sum" > "$_ipfs_stamp"
fi
export DCM_TEST_JSIPFS="$PWD/tools/ipfs/node_modules/.bin/jsipfs"

if ! command -v ipfs_cid >/dev/null 2>&1; then
  apt-get install -y --no-install-recommends ipfs-cid \
    || { apt-get update && apt-get install -y --no-install-recommends ipfs-cid; }
fi
unset _ipfs_stamp _ipfs_lock_sum
