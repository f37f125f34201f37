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

Money flow (issue 4 §5-7): a job with a reward starts `awaiting_funding`, invisible to
providers; its funding call (`{chain_id, to, data, value}`) is on the seed 000 upload
answer, `GET /jobs/image_processing/get-job/{id}`, `GET /jobs/{id}/funding` (seed 000
jobs, no credentials), `GET /v1/jobs/{id}/funding` and the /v1 detail's `funding`. The
watcher (`watcher.py`) applies escrow events (funded -> pending; wrong funder or too little
-> rejected back through the outbox; ResultSubmitted -> submitted; JobDisputed ->
disputed; JobSettled -> completed/cancelled/expired). A claim of an escrowed job
queues the operator's `assign` (the lease holder, at the lease's attempt) in the claim's
own transaction and wakes the outbox. The settlement policy
(`policy.py`, every `DCM_CHAIN_POLICY_INTERVAL_SECONDS`) finalizes after the window
(`finalizeBatch` for several), refunds expired deposits, and expires jobs unfunded for
`DCM_FUNDING_TIMEOUT_SECONDS` (releasing their pins). Requester calls: `/v1/jobs/{id}/
cancel-call` and `/accept-call`; reads: `/v1/jobs/{id}/settlement`, `/v1/payouts`
(`router_jobs.py`).

Services reach it as `app.state.chain` (a `node.chain.host.ChainHost`): `w3`,
`chain_id`, `escrow()` (the `marketplace.escrow` binding), `escrow_address`,
`deployment_block`, `confirmations`, `operator`. Domain functions: `service.py`
(funding gate, event application, requester calls, payouts), `watcher.py`, `outbox.py`,
`policy.py`.
"""
