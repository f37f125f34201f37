"""Limits that keep one client from taking the node down: request bodies bounded while
they stream in (`body`), token-bucket rate limits per client address and per account
(`rates`). Password hashing has its own bound (`node.auth.passwords`)."""
