"""visitlens: on-prem, multi-tenant visitor analytics built on face recognition."""

__version__ = "0.1.0"
