"""Content addressing: Kubo-identical UnixFS import, CIDs, CAR files, and the store protocol."""
