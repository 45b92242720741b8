"""Adapters: the only modules that talk to drivers and SDKs (asyncpg, pymilvus, minio, jwt …)."""
