"""Webhooks: subscriptions to job events, their signed deliveries and the sender."""
