"""The HTTP API the web UI and operators call: auth, tenants, sites, cameras, users, API keys."""
