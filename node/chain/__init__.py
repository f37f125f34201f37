"""The node's chain: embedded EVM, JSON-RPC, host adapter, escrow deployment."""
