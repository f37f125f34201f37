# Hardhat 2 + the npm solc (wasm) compiler for the escrow contract (issue 4).
# Installs the root package.json with `npm ci` (ethers 6 too: the JSON-RPC client tests
# run it with node against the embedded chain and Hardhat), keeps Hardhat's caches inside
# the project, and fails CI when contracts/artifacts/JobEscrow.json is stale against a fresh compile.
# The escrow tests start `./node_modules/.bin/hardhat node --hostname 127.0.0.1` themselves.
if ! command -v node >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm
fi
export HARDHAT_DISABLE_TELEMETRY_PROMPT=true
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$PWD/.cache/xdg-cache}
export XDG_CONFIG_HOME=${XDG_CONFIG_HOME:-$PWD/.cache/xdg-config}
export XDG_DATA_HOME=${XDG_DATA_HOME:-$PWD/.cache/xdg-data}
mkdir -p "$XDG_CACHE_HOME" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME"
if [ ! -x node_modules/.bin/hardhat ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node contracts/compile.js --check
