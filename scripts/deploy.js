// Deploy JobEscrow from the committed artifact to a Hardhat network:
//   npx hardhat run scripts/deploy.js --network localhost
// Environment: ESCROW_ARBITER (default: the second account; never the assigner: the
// contract refuses it), ESCROW_ASSIGNER (default: the deployer), ESCROW_FEE_BPS (0),
// ESCROW_FEE_RECIPIENT, ESCROW_ARBITRATION_WINDOW (seconds, default 7 days).
// Prints one JSON line: {address, chainId, block, txHash}.
const fs = require("fs");
const path = require("path");
const hre = require("hardhat");

async function main() {
  const artifact = JSON.parse(
    fs.readFileSync(path.join(__dirname, "..", "contracts", "artifacts", "JobEscrow.json"), "utf8"),
  );
  const provider = hre.network.provider;
  const accounts = await provider.request({ method: "eth_accounts" });
  const deployer = accounts[0];
  const env = process.env;
  const zero = "0x" + "00".repeat(20);
  const arbiter = env.ESCROW_ARBITER || accounts[1];
  const assigner = env.ESCROW_ASSIGNER || deployer;
  const feeBps = BigInt(env.ESCROW_FEE_BPS || "0");
  const feeRecipient = env.ESCROW_FEE_RECIPIENT || (feeBps > 0n ? deployer : zero);
  const window = BigInt(env.ESCROW_ARBITRATION_WINDOW || String(7 * 24 * 3600));
  const word = (hex) => hex.toLowerCase().replace(/^0x/, "").padStart(64, "0");
  const args =
    word(arbiter) + word(assigner) + word(feeBps.toString(16)) + word(feeRecipient) +
    word(window.toString(16));
  const txHash = await provider.request({
    method: "eth_sendTransaction",
    params: [{ from: deployer, data: artifact.bytecode + args, gas: "0x2dc6c0" }],
  });
  let receipt = null;
  for (let i = 0; i < 600 && !receipt; i++) {
    receipt = await provider.request({ method: "eth_getTransactionReceipt", params: [txHash] });
    if (!receipt) await new Promise((r) => setTimeout(r, 100));
  }
  if (!receipt || receipt.status !== "0x1") throw new Error(`deployment failed: ${txHash}`);
  const chainId = parseInt(await provider.request({ method: "eth_chainId" }), 16);
  console.log(
    JSON.stringify({
      address: receipt.contractAddress,
      chainId,
      block: parseInt(receipt.blockNumber, 16),
      txHash,
    }),
  );
}

main().catch((err) => {
  console.error(err.message || err);
  process.exitCode = 1;
});
