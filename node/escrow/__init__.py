"""The escrow domain: funding a job's deposit, applying the escrow's events to jobs
(`watcher`), the settlement policy, the outbox of operator transactions and payouts, with
every query in `repository`. It settles jobs through `node.jobs.service`, so it sits
above jobs; it talks to the chain only through `node.chain` (the adapter and its
embedded engine). `tick.ChainTick` is the loop service that runs it.

Money flow (issue 4 §5-7, issue 18): a job with a reward starts `awaiting_funding`,
invisible to providers; its funding call (`{chain_id, to, data, value}`, for the job's
current escrow key, which names its requester and a funding generation) is on the seed
000 upload answer, `GET /jobs/image_processing/get-job/{id}`, `GET /jobs/{id}/funding`
(seed 000 jobs, no credentials), `GET /v1/jobs/{id}/funding` and the /v1 detail's
`funding`. The watcher (`watcher.py`) keeps `chain_escrows`, the node's view of every key,
and applies the events (`service.py`): a deposit meeting the node's terms opens the job;
any other is refused and refunded; a result on chain is judged (accepted, or disputed by
the node); a settlement moves the job to its final state. The settlement policy
(`policy.py`) reconciles the chain with the jobs every tick (unassign a binding no live
lease holds, assign a live lease, judge results) and, every
`DCM_CHAIN_POLICY_INTERVAL_SECONDS`, refunds every deposit a job does not use, refunds
expired deposits, finalizes accepted results and unresolved disputes, withdraws fees and
expires jobs unfunded for `DCM_FUNDING_TIMEOUT_SECONDS` (releasing their pins); every
call goes through the outbox (`outbox.py`). Requester calls: `/v1/jobs/{id}/cancel-call`,
`/accept-call`, `POST /dispute`; reads: `/v1/jobs/{id}/escrow`, `/settlement`,
`/v1/payouts` (`router_jobs.py`). The money rules are in README.md.
Domain functions: `service.py` (funding gate, event application, requester calls,
payouts), `watcher.py`, `outbox.py`, `policy.py`, run together by `tick.py`; every query
in `repository.py`; the escrow's deployment at start in `deploy.py`.
"""
