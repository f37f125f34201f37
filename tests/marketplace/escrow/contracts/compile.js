#!/usr/bin/env node
// Compiles the escrow tests' helper contracts (TestWallet.sol) with the npm `solc` and
// writes TestWallet.json beside it; `--check` exits 1 when the committed JSON is stale.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const DIR = __dirname;
const NAME = "TestWallet";
const OUT = path.join(DIR, `${NAME}.json`);

const input = {
  language: "Solidity",
  sources: { [`${NAME}.sol`]: { content: fs.readFileSync(path.join(DIR, `${NAME}.sol`), "utf8") } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
for (const e of output.errors || []) process.stderr.write(e.formattedMessage + "\n");
if ((output.errors || []).some((e) => e.severity === "error")) process.exit(2);
const c = output.contracts[`${NAME}.sol`][NAME];
const text = JSON.stringify({ abi: c.abi, bytecode: "0x" + c.evm.bytecode.object }, null, 2) + "\n";
if (process.argv.includes("--check")) {
  const committed = fs.existsSync(OUT) ? fs.readFileSync(OUT, "utf8") : "";
  if (committed !== text) {
    process.stderr.write(`${path.relative(process.cwd(), OUT)} is stale: run this script\n`);
    process.exit(1);
  }
} else {
  fs.writeFileSync(OUT, text);
  process.stdout.write(`wrote ${path.relative(process.cwd(), OUT)}\n`);
}
