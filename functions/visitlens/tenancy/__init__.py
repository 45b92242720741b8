"""Tenancy: the scope that row-level security enforces."""
