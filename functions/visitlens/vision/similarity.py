"""Embedding arithmetic: L2 normalisation and cosine similarity (= inner product of unit vectors)."""

from __future__ import annotations

import numpy as np

from visitlens.vision.types import Floats

EPSILON = 1e-12


def l2_normalize(vectors: Floats) -> Floats:
    """Rows scaled to unit length; a zero row is an error, not a silent NaN."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    if np.any(norms < EPSILON):
        raise ValueError("cannot normalise a zero embedding")
    out: Floats = (vectors / norms).astype(np.float32)
    return out


def cosine(a: Floats, b: Floats) -> Floats:
    """Pairwise cosine similarities of two sets of unit vectors (n x d, m x d) → n x m."""
    out: Floats = (a @ b.T).astype(np.float32)
    return out
