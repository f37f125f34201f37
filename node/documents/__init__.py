"""Seed 004's job worker dialect (`/api/jobs/...`) over the one job model: typed document
jobs (`pdf`, `transformer`, `session`), batches, templates, archives, per-job webhooks."""
