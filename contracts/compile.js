#!/usr/bin/env node
// Deterministic offline compile of contracts/JobEscrow.sol with the npm `solc` (wasm)
// compiler through standard JSON. Writes contracts/artifacts/JobEscrow.json: abi, bytecode,
// deployedBytecode, compiler version and settings, the solc metadata and the exact
// standard-JSON input (what an explorer's "verify source" form takes).
// `--check` compiles and exits 1 when the committed artifact differs (CI staleness check).
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const ROOT = path.resolve(__dirname, "..");
const SOURCE = "contracts/JobEscrow.sol";
const NAME = "JobEscrow";
const OUT = path.join(ROOT, "contracts", "artifacts", `${NAME}.json`);
// The Python binding ships a copy as package data, so an installed node finds it.
const PACKAGE_COPY = path.join(ROOT, "marketplace", "escrow", "artifacts", `${NAME}.json`);

// Keep in sync with hardhat.config.js (they share this object).
const SETTINGS = require("./settings.json");

function build() {
  const content = fs.readFileSync(path.join(ROOT, SOURCE), "utf8");
  const input = {
    language: "Solidity",
    sources: { [SOURCE]: { content } },
    settings: {
      ...SETTINGS,
      outputSelection: {
        "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"] },
      },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) process.stderr.write(e.formattedMessage + "\n");
  if (errors.length) process.exit(2);
  const c = output.contracts[SOURCE][NAME];
  const verifyInput = { language: "Solidity", sources: { [SOURCE]: { content } }, settings: SETTINGS };
  const artifact = {
    contractName: NAME,
    sourceName: SOURCE,
    compiler: { name: "solc", version: solc.version().replace(/\.Emscripten\.clang$/, ""), settings: SETTINGS },
    abi: c.abi,
    bytecode: "0x" + c.evm.bytecode.object,
    deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    metadata: c.metadata,
    standardJsonInput: verifyInput,
  };
  return JSON.stringify(artifact, null, 2) + "\n";
}

const text = build();
if (process.argv.includes("--check")) {
  let stale = false;
  for (const file of [OUT, PACKAGE_COPY]) {
    const committed = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    if (committed !== text) {
      process.stderr.write(`${path.relative(ROOT, file)} is stale: run \`npm run compile\` and commit it\n`);
      stale = true;
    }
  }
  if (stale) process.exit(1);
  process.stdout.write("contract artifacts are up to date\n");
} else {
  for (const file of [OUT, PACKAGE_COPY]) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    process.stdout.write(`wrote ${path.relative(ROOT, file)}\n`);
  }
}
