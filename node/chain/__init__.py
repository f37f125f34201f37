"""The node's chain: embedded EVM, JSON-RPC, host adapter, escrow, watcher, outbox.

Two modes, chosen by `DCM_CHAIN_RPC_URL`:

- unset (default): an in-process EVM (eth-tester + py-evm, chain id 131277322940537)
  journaled under `<data_dir>/chain/journal.jsonl` and replayed at start (identical
  blocks, hashes, receipts, logs). Its JSON-RPC is served at `POST /chain/rpc`. The
  operator key is created at first start (`<data_dir>/chain/operator.key`, mode 0600)
  and holds the whole genesis supply; the dev faucet (`POST /chain/faucet`, only with
  `DCM_ENVIRONMENT=development`) pays from it. Confirmations: 0.
- set: that RPC is used; `/chain/rpc` and the faucet do not exist. The operator key
  comes from `DCM_CHAIN_OPERATOR_KEYFILE` (eth-account keystore) +
  `DCM_CHAIN_OPERATOR_PASSWORD`; the escrow is `DCM_CHAIN_ESCROW_ADDRESS`, or is deployed
  by the operator at first start and recorded in `<data_dir>/chain/deployments-<id>.json`.
  Confirmations: `DCM_CHAIN_CONFIRMATIONS` (default 2).

Services reach it as `app.state.chain` (a `node.chain.host.ChainHost`): `w3`,
`chain_id`, `escrow()` (the `marketplace.escrow` binding), `escrow_address`,
`deployment_block`, `confirmations`, `operator`. Domain functions: `service.py`
(funding gate, event application, payouts), `watcher.py`, `outbox.py`.
"""
