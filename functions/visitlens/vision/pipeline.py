"""Detect → align → assess → embed (batched) for one image. Pure orchestration over two ports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from visitlens.vision.alignment import align
from visitlens.vision.detection import Detection
from visitlens.vision.quality import Quality, assess
from visitlens.vision.types import Floats, Image


class Detector(Protocol):
    model_id: str

    def detect(self, image: Image) -> list[Detection]: ...


class Embedder(Protocol):
    model_id: str
    dim: int

    def embed(self, faces: Sequence[Image]) -> Floats: ...


@dataclass(frozen=True, slots=True)
class Face:
    detection: Detection
    quality: Quality
    aligned: Image
    embedding: Floats | None  # None when the face was not embedded (unusable quality)


class FaceAnalyzer(Protocol):
    """Finds, judges and embeds the faces of an image (:class:`FacePipeline` with the ONNX models)."""

    def analyze(self, image: Image, *, embed_unusable: bool = False) -> list[Face]: ...


class FacePipeline:
    def __init__(self, detector: Detector, embedder: Embedder) -> None:
        self.detector = detector
        self.embedder = embedder

    def analyze(self, image: Image, *, embed_unusable: bool = False) -> list[Face]:
        """Every face in ``image``, best first; usable ones (or all) embedded in one batch."""
        detections = self.detector.detect(image)
        crops = [align(image, d.landmarks) for d in detections]
        qualities = [assess(d, image.shape, c) for d, c in zip(detections, crops, strict=True)]
        chosen = [i for i, q in enumerate(qualities) if embed_unusable or q.usable]
        vectors = self.embedder.embed([crops[i] for i in chosen])
        embedded = dict(zip(chosen, vectors, strict=True))
        return [
            Face(d, q, c, embedded.get(i))
            for i, (d, q, c) in enumerate(zip(detections, qualities, crops, strict=True))
        ]
