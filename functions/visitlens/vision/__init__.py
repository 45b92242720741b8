"""Pure vision: decoding, detection post-processing, alignment, quality, similarity (no I/O)."""
