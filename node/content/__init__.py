"""The node's content store: the embedded block store with pins in the database, the Kubo
RPC adapter, and the Kubo-compatible `/api/v0` API and `/ipfs` gateway."""
