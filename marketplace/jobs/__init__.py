"""Job domain shared by node, worker and SDK: canonical states and the transition table."""
