"""The marketplace node: FastAPI app, one router per API dialect, DB models and
repositories, services, background loops, the embedded chain host and block store."""
