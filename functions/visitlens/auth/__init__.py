"""Authentication and authorisation: principals, roles and scopes, token issuing."""
