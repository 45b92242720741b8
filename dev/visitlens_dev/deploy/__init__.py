"""Deployment files generated from the functions' ``function.yaml`` (the one trigger declaration)."""
