"""Retention of raw snapshots (30 days by default, per tenant)."""
