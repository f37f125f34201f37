"""The `dcm` command line: may import node, marketplace and worker; nothing imports it."""
