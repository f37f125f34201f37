// ethers 6 as a dapp uses it, against one JSON-RPC URL: prints what it saw as one JSON line.
//   node ethers_client.cjs '<json: {url, key, storage, emitter, reverter}>'
// The caller deployed web3's Storage, Emitter and Revert test contracts and funded `key`;
// this script reads storage, emits and queries events, and makes the mistakes whose error
// classification is compared with Hardhat's (nonce, funds, revert).
"use strict";
const { ethers } = require("ethers");

const EMITTER_ABI = [
  "function logDouble(uint8 which, uint256 arg0, uint256 arg1)",
  "event LogDoubleWithIndex(uint256 arg0, uint256 indexed arg1)",
];
const REVERT_ABI = [
  "function revertWithMessage()",
  "function customErrorWithoutMessage()",
  "function normalFunction() view returns (bool)",
  "error Unauthorized()",
];

async function classify(promise) {
  try {
    await promise;
    return { code: "OK" };
  } catch (e) {
    return {
      code: e.code || "NO_CODE",
      reason: e.reason === undefined ? null : e.reason,
      data: e.data === undefined ? null : e.data,
      message: e.shortMessage || e.message,
    };
  }
}

async function main() {
  const input = JSON.parse(process.argv[2]);
  const provider = new ethers.JsonRpcProvider(input.url, undefined, { polling: true });
  provider.pollingInterval = 100;
  const wallet = new ethers.Wallet(input.key, provider);
  const out = {};

  out.chainId = (await provider.getNetwork()).chainId.toString();
  out.storage = [];
  for (const slot of [0, 1, 2, 3]) out.storage.push(await provider.getStorage(input.storage, slot));

  const emitter = new ethers.Contract(input.emitter, EMITTER_ABI, wallet);
  const tx = await emitter.logDouble(9, 41, 42);
  const receipt = await tx.wait();
  out.receiptStatus = receipt.status;
  out.receiptEvents = receipt.logs.map((l) => emitter.interface.parseLog(l)).map((e) => [
    e.name,
    e.args[0].toString(),
    e.args[1].toString(),
  ]);
  const queried = await emitter.queryFilter(emitter.filters.LogDoubleWithIndex(null, 42), 0);
  out.queried = queried.map((e) => [e.args[0].toString(), e.blockNumber === receipt.blockNumber]);

  // nonce already used: the signed transaction names nonce 0 again
  out.nonceLow = await classify(
    wallet.sendTransaction({ to: wallet.address, value: 1, nonce: 0, gasLimit: 21000 }),
  );
  // a wallet with no ether: explicit gas (straight to eth_sendRawTransaction) ...
  const broke = ethers.Wallet.createRandom().connect(provider);
  out.fundsSend = await classify(
    broke.sendTransaction({ to: wallet.address, value: 1, gasLimit: 21000 }),
  );
  // ... and ethers' own gas estimate first (eth_estimateGas with value over the balance)
  out.fundsEstimate = await classify(
    broke.sendTransaction({ to: wallet.address, value: ethers.parseEther("1") }),
  );

  const reverter = new ethers.Contract(input.reverter, REVERT_ABI, wallet);
  out.normal = await reverter.normalFunction();
  out.revertCall = await classify(reverter.revertWithMessage.staticCall());
  out.revertSend = await classify(reverter.revertWithMessage());
  const custom = await classify(reverter.customErrorWithoutMessage.staticCall());
  out.custom = { code: custom.code, data: custom.data };
  process.stdout.write(JSON.stringify(out) + "\n");
  provider.destroy();
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
});
