"""Shared domain of the marketplace: job specs and states, wire schemas, content
addressing, the escrow binding and the HTTP client SDK. Imports neither `node` nor `worker`."""
