"""Person management: merge, unmerge, not-same-person marks, and the right to erasure."""
