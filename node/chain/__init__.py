"""The node's chain: the adapter services use (`host.py`: one `ChainHost` protocol, an
embedded and an external implementation, built by `startup.py`) and the embedded engine
(`evm.py`, `journal.py`, `rpc.py`, served by `router.py`). The escrow domain on top of it
is `node.escrow`.

Two modes, chosen by `DCM_CHAIN_RPC_URL`:

- unset (default): an in-process EVM (eth-tester + py-evm, chain id 131277322940537)
  journaled under `<data_dir>/chain/journal.jsonl` and replayed at start (identical
  blocks, hashes, receipts, logs). Its JSON-RPC is served at `POST /chain/rpc`. The
  operator key is created at first start (`<data_dir>/chain/operator.key`, mode 0600)
  and holds the whole genesis supply; the dev faucet (`POST /chain/faucet`, only with
  `DCM_ENVIRONMENT=development`) pays from it. The escrow's arbiter is a second key,
  `<data_dir>/chain/arbiter.key`, never the operator. Confirmations: 0.
- set: that RPC is used; `/chain/rpc` and the faucet do not exist. The operator key
  comes from `DCM_CHAIN_OPERATOR_KEYFILE` (eth-account keystore) +
  `DCM_CHAIN_OPERATOR_PASSWORD`; the escrow is `DCM_CHAIN_ESCROW_ADDRESS`, or is deployed
  by the operator at first start (arbiter: `DCM_CHAIN_ARBITER_ADDRESS`) and recorded in
  `<data_dir>/chain/deployments-<id>.json`.
  Confirmations: `DCM_CHAIN_CONFIRMATIONS` (default 2).

Services reach it as the runtime's `chain` (a `node.chain.host.ChainHost`): `w3`,
`chain_id`, `escrow()` (the `marketplace.escrow` binding), `escrow_address`,
`deployment_block`, `confirmations`, `operator`, and the operator's one transaction path
(`operator_lock`, `operator_tx_fields`, `send_operator_transaction`, `deploy`, `faucet`).
"""
