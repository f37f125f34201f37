"""The Python SDK: talk to a dcm node over HTTP as a requester or a provider."""
