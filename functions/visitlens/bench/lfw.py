"""Embeddings of LFW photos (research data in ../shared/faces, never copied into the repository)."""

from __future__ import annotations

import csv
import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from visitlens.config import Settings
from visitlens.vision.types import Floats, as_image

FACES_DIR_ENV = "VISITLENS_SHARED_FACES"

_pipeline = None


def faces_dir() -> Path:
    """``../shared/faces`` beside the checkout (or $VISITLENS_SHARED_FACES)."""
    configured = os.environ.get(FACES_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[4] / "shared" / "faces"


def _init(settings_json: str) -> None:
    global _pipeline
    from visitlens.adapters.onnx_models import cv2_threads, load_models
    from visitlens.vision.pipeline import FacePipeline

    cv2_threads(1)
    settings = Settings.model_validate_json(settings_json)
    _pipeline = FacePipeline(*load_models(settings))


def _embed_one(path: str) -> tuple[NDArray[np.float32] | None, float]:
    """The embedding of the face closest to the image centre (LFW's labelled person)."""
    assert _pipeline is not None
    raw = cv2.imread(path)
    if raw is None:
        raise FileNotFoundError(path)
    image = as_image(raw)
    faces = _pipeline.analyze(image, embed_unusable=True)
    if not faces:
        return None, 0.0
    h, w = image.shape[:2]

    def distance(face: object) -> float:
        x, y, fw, fh = face.detection.box  # type: ignore[attr-defined]
        return float((x + fw / 2 - w / 2) ** 2 + (y + fh / 2 - h / 2) ** 2)

    best = min(faces, key=distance)
    return best.embedding, best.quality.score


def embed_all(
    settings: Settings, relative_paths: list[str], cache_dir: Path, workers: int = 2
) -> tuple[Floats, NDArray[np.bool_]]:
    """(n x d embeddings, found mask), cached per model file and path list."""
    from visitlens.adapters.model_prep import load_manifest

    manifest = load_manifest(settings.models_dir)
    key = hashlib.sha256(
        "\n".join(
            [
                manifest["sface-2021dec"].sha256,
                manifest["yunet-2023mar"].sha256,
                settings.models.recognizer,
                *relative_paths,
            ]
        ).encode()
    ).hexdigest()[:16]
    cache = cache_dir / f"embeddings-{key}.npz"
    if cache.exists():
        data = np.load(cache)
        return data["embeddings"], data["found"]
    root = faces_dir()
    paths = [str(root / p) for p in relative_paths]
    with ProcessPoolExecutor(workers, initializer=_init,
                             initargs=(settings.model_dump_json(),)) as pool:  # fmt: skip
        results = list(pool.map(_embed_one, paths, chunksize=32))
    dim = next(len(r[0]) for r in results if r[0] is not None)
    embeddings = np.zeros((len(paths), dim), np.float32)
    found = np.zeros(len(paths), bool)
    for i, (vector, _) in enumerate(results):
        if vector is not None:
            embeddings[i] = vector
            found[i] = True
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(cache, embeddings=embeddings, found=found)
    return embeddings, found


def read_csv(name: str) -> list[dict[str, str]]:
    with (faces_dir() / name).open() as handle:
        return list(csv.DictReader(handle))
