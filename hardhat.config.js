// Hardhat 2 project around contracts/JobEscrow.sol, usable offline.
// The committed artifact (contracts/artifacts/JobEscrow.json) comes from `npm run compile`
// (contracts/compile.js, solc standard JSON); Hardhat's own compile uses the same wasm
// compiler and settings, never downloading one (TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD).
const path = require("path");
const { subtask } = require("hardhat/config");
const { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } = require("hardhat/builtin-tasks/task-names");

const SOLC_VERSION = require("solc/package.json").version;
const SETTINGS = require("./contracts/settings.json");

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async (args, _hre, runSuper) => {
  if (args.solcVersion !== SOLC_VERSION) return runSuper();
  const solc = require("solc");
  return {
    compilerPath: path.join(path.dirname(require.resolve("solc/package.json")), "soljson.js"),
    isSolcJs: true,
    version: SOLC_VERSION,
    longVersion: solc.version().replace(/\.Emscripten\.clang$/, ""),
  };
});

/** @type import('hardhat/config').HardhatUserConfig */
module.exports = {
  solidity: {
    version: SOLC_VERSION,
    settings: {
      optimizer: SETTINGS.optimizer,
      viaIR: SETTINGS.viaIR,
      evmVersion: SETTINGS.evmVersion,
      metadata: SETTINGS.metadata,
    },
  },
  paths: {
    sources: "./contracts",
    artifacts: "./artifacts-hardhat",
    cache: "./.cache/hardhat",
  },
  networks: {
    hardhat: { hardfork: "cancun", chainId: 31337 },
    localhost: { url: process.env.DCM_CHAIN_RPC_URL || "http://127.0.0.1:8545" },
  },
};
