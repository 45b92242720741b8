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

from visitlens.adapters.onnx_models import OnnxEmbedder
from visitlens.config import Settings
from visitlens.vision.alignment import ALIGNMENT_VERSION
from visitlens.vision.pipeline import Face
from visitlens.vision.similarity import l2_normalize
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


def _embed_one(path: str) -> tuple[NDArray[np.float32] | None, NDArray[np.float32] | None]:
    """(plain, flip-averaged) embeddings of the face closest to the image centre (LFW's person)."""
    assert _pipeline is not None
    raw = cv2.imread(path)
    if raw is None:
        raise FileNotFoundError(path)
    image = as_image(raw)
    faces = _pipeline.analyze(image, embed_unusable=True)
    if not faces:
        return None, None
    h, w = image.shape[:2]

    def distance(face: Face) -> float:
        x, y, fw, fh = face.detection.box
        return float((x + fw / 2 - w / 2) ** 2 + (y + fh / 2 - h / 2) ** 2)

    crop = min(faces, key=distance).aligned
    embedder = _pipeline.embedder
    assert isinstance(embedder, OnnxEmbedder)
    plain, mirrored = embedder.raw([crop, np.ascontiguousarray(crop[:, ::-1])])
    both = l2_normalize(np.stack([plain, plain + mirrored]))
    return both[0], both[1]


def embed_all(
    settings: Settings, relative_paths: list[str], cache_dir: Path, workers: int = 2
) -> tuple[Floats, Floats, NDArray[np.bool_]]:
    """(plain n x d, flip-averaged n x d, found mask), cached per model, alignment and path list."""
    from visitlens.adapters.model_prep import load_manifest

    manifest = load_manifest(settings.models_dir)
    key = hashlib.sha256(
        "\n".join(
            [
                manifest["sface-2021dec"].sha256,
                manifest["yunet-2023mar"].sha256,
                settings.models.recognizer,
                ALIGNMENT_VERSION,
                *relative_paths,
            ]
        ).encode()
    ).hexdigest()[:16]
    cache = cache_dir / f"embeddings-{key}.npz"
    if cache.exists():
        data = np.load(cache)
        return data["plain"], data["flip"], data["found"]
    root = faces_dir()
    paths = [str(root / p) for p in relative_paths]
    with ProcessPoolExecutor(
        workers, initializer=_init, initargs=(settings.model_dump_json(),)
    ) as pool:
        results = list(pool.map(_embed_one, paths, chunksize=32))
    dim = next(len(r[0]) for r in results if r[0] is not None)
    plain = np.zeros((len(paths), dim), np.float32)
    flip = np.zeros((len(paths), dim), np.float32)
    found = np.zeros(len(paths), bool)
    for i, (vector, flipped) in enumerate(results):
        if vector is not None and flipped is not None:
            plain[i], flip[i], found[i] = vector, flipped, True
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(cache, plain=plain, flip=flip, found=found)
    return plain, flip, found


def read_csv(name: str) -> list[dict[str, str]]:
    with (faces_dir() / name).open() as handle:
        return list(csv.DictReader(handle))
