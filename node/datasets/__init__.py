"""Seed 000: dataset jobs (upload, zip download, open jobs, job detail)."""
