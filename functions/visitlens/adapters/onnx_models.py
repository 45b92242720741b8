"""onnxruntime sessions for the detector and the embedder, built once per process.

Providers and threads come from settings (CPU here, CoreML on the Mac Mini, CUDA where present).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from visitlens.adapters.model_prep import verified_path
from visitlens.config import ModelSettings, Settings
from visitlens.errors import ConfigurationError
from visitlens.vision.alignment import ALIGNED_SIZE
from visitlens.vision.demographics import (
    AGE_CHIP,
    GENDER_CHIP,
    FaceEstimate,
    chip,
    expected_age,
    to_input,
)
from visitlens.vision.detection import Detection, decode, to_blob
from visitlens.vision.similarity import l2_normalize
from visitlens.vision.types import Floats, Image

logger = logging.getLogger(__name__)

DETECTOR_ID = "yunet-2023mar"
SFACE_ID = "sface-2021dec"
ARCFACE_ID = "arcface-user"
GENDER_ID = "gender-v1"
AGE_ID = "age-v1"


def _session(path: Path, models: ModelSettings) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = models.intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    available = set(ort.get_available_providers())
    providers = [p for p in models.providers if p in available] or ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), options, providers=providers)


class OnnxDetector:
    """YuNet at native resolution (input padded to a multiple of 32)."""

    model_id = DETECTOR_ID

    def __init__(self, path: Path, models: ModelSettings) -> None:
        self._session = _session(path, models)
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]
        self._settings = models

    def detect(self, image: Image) -> list[Detection]:
        blob, padded = to_blob(image)
        values = self._session.run(self._outputs, {self._input: blob})
        return decode(
            dict(zip(self._outputs, values, strict=True)),
            padded,
            image.shape[:2],
            self._settings.detector_score,
            self._settings.detector_nms_iou,
            self._settings.max_faces,
        )


@dataclass(frozen=True, slots=True)
class _Preprocessing:
    rgb: bool
    mean: float
    scale: float


class OnnxEmbedder:
    """Aligned 112 x 112 BGR crops → L2-normalised embeddings, batched. Backends: :meth:`_run`."""

    def __init__(
        self, path: Path, model_id: str, preprocessing: _Preprocessing, models: ModelSettings
    ) -> None:
        self.model_id = model_id
        self._pre = preprocessing
        self._flip = models.flip_augment
        self._load(path, models)
        probe = self._run(np.zeros((1, 3, ALIGNED_SIZE, ALIGNED_SIZE), np.float32))
        self.dim = int(probe.shape[1])

    def _load(self, path: Path, models: ModelSettings) -> None:
        self._session = _session(path, models)
        self._input = self._session.get_inputs()[0].name
        self._batch_fixed = isinstance(self._session.get_inputs()[0].shape[0], int)

    def _run(self, batch: Floats) -> Floats:
        if self._batch_fixed and batch.shape[0] != 1:
            return np.concatenate([self._run(batch[i : i + 1]) for i in range(batch.shape[0])])
        out: Floats = self._session.run(None, {self._input: batch})[0].astype(np.float32)
        return out

    def embed(self, faces: Sequence[Image]) -> Floats:
        """L2-normalised embeddings; with ``flip_augment``, of each face plus its mirror image."""
        if not faces:
            return np.zeros((0, self.dim), np.float32)
        if not self._flip:
            return l2_normalize(self.raw(faces))
        mirrored = [np.ascontiguousarray(f[:, ::-1]) for f in faces]
        both = self.raw([*faces, *mirrored])
        n = len(faces)
        return l2_normalize(both[:n] + both[n:])

    def raw(self, faces: Sequence[Image]) -> Floats:
        """The recogniser's outputs before normalisation, in one batch."""
        stack = np.stack(faces)
        if self._pre.rgb:
            stack = stack[..., ::-1]
        batch = ((stack.astype(np.float32) - self._pre.mean) * self._pre.scale).transpose(
            0, 3, 1, 2
        )
        return self._run(np.ascontiguousarray(batch))


class Cv2Embedder(OnnxEmbedder):
    """The same ONNX graph run by OpenCV's DNN engine (faster for SFace on a plain CPU)."""

    def _load(self, path: Path, models: ModelSettings) -> None:
        self._net = cv2.dnn.readNet(str(path))
        self._lock = threading.Lock()  # a cv2.dnn.Net is not safe to share between threads

    def _run(self, batch: Floats) -> Floats:
        with self._lock:
            self._net.setInput(batch)
            out = np.asarray(self._net.forward(), np.float32)
        return out.reshape(batch.shape[0], -1)


_HARDWARE_PROVIDERS = {"CoreMLExecutionProvider", "CUDAExecutionProvider",
                       "TensorrtExecutionProvider", "DmlExecutionProvider",
                       "ROCMExecutionProvider", "OpenVINOExecutionProvider"}  # fmt: skip


def _embedder_class(models: ModelSettings) -> type[OnnxEmbedder]:
    if models.embedder_backend == "opencv":
        return Cv2Embedder
    if models.embedder_backend == "onnxruntime":
        return OnnxEmbedder
    available = set(ort.get_available_providers())
    hardware = [p for p in models.providers if p in _HARDWARE_PROVIDERS and p in available]
    return OnnxEmbedder if hardware else Cv2Embedder


def arcface_model_id(path: Path) -> str:
    """A user-supplied model gets an id from its bytes, so two files never share a space."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return f"{ARCFACE_ID}-{digest}"


SFACE_DIM = 128


def embedding_space(settings: Settings) -> tuple[str, int]:
    """(model id, dimension) of the configured recogniser, without running it."""
    models = settings.models
    if models.recognizer == SFACE_ID:
        return SFACE_ID, SFACE_DIM
    if models.recognizer == ARCFACE_ID:
        if models.arcface_path is None or not models.arcface_path.is_file():
            raise ConfigurationError("models.arcface_path must name an ArcFace ONNX file")
        session = ort.InferenceSession(str(models.arcface_path), providers=["CPUExecutionProvider"])
        dim = session.get_outputs()[0].shape[-1]
        if not isinstance(dim, int):
            raise ConfigurationError("the ArcFace model's output dimension is not fixed")
        return arcface_model_id(models.arcface_path), dim
    raise ConfigurationError(f"unknown recogniser {models.recognizer!r}")


_lock = threading.Lock()
_cache: dict[tuple[str, str], tuple[OnnxDetector, OnnxEmbedder]] = {}


def load_models(settings: Settings) -> tuple[OnnxDetector, OnnxEmbedder]:
    """Detector and embedder of this process, verified against the manifest and loaded once."""
    return load_model_pair(settings.models, settings.models_dir)


def load_model_pair(models: ModelSettings, models_dir: Path) -> tuple[OnnxDetector, OnnxEmbedder]:
    """As :func:`load_models`, for callers without server settings (the edge worker)."""
    key = (
        str(models_dir),
        f"{models.recognizer}:{models.flip_augment}:{models.embedder_backend}",
    )
    with _lock:
        if key in _cache:
            return _cache[key]
        det_path, _ = verified_path(models_dir, DETECTOR_ID)
        detector = OnnxDetector(det_path, models)
        if models.recognizer == SFACE_ID:
            path, _ = verified_path(models_dir, SFACE_ID)
            # SFace subtracts and scales inside the graph: raw RGB 0..255 in.
            embedder = _embedder_class(models)(
                path, SFACE_ID, _Preprocessing(True, 0.0, 1.0), models
            )
        elif models.recognizer == ARCFACE_ID:
            if models.arcface_path is None or not models.arcface_path.is_file():
                raise ConfigurationError("models.arcface_path must name an ArcFace ONNX file")
            embedder = _embedder_class(models)(
                models.arcface_path,
                arcface_model_id(models.arcface_path),
                _Preprocessing(True, 127.5, 1 / 127.5),
                models,
            )
        else:
            raise ConfigurationError(f"unknown recogniser {models.recognizer!r}")
        logger.info(
            "models loaded: detector=%s embedder=%s dim=%d backend=%s",
            DETECTOR_ID, embedder.model_id, embedder.dim, type(embedder).__name__,
        )  # fmt: skip
        _cache[key] = (detector, embedder)
        return detector, embedder


class OnnxDemographics:
    """The gender (32 px chips) and age (64 px chips) networks; one batch per call."""

    def __init__(self, gender_path: Path, age_path: Path, models: ModelSettings) -> None:
        self._gender = _session(gender_path, models)
        self._age = _session(age_path, models)

    def estimate(self, image: Image, landmarks: Sequence[Floats]) -> list[FaceEstimate]:
        """One estimate per face of ``image`` (BGR), given each face's five landmarks."""
        if not landmarks:
            return []
        genders = self._gender.run(
            None, {"images": to_input([chip(image, points, GENDER_CHIP) for points in landmarks])}
        )[0]
        ages = self._age.run(
            None, {"images": to_input([chip(image, points, AGE_CHIP) for points in landmarks])}
        )[0]
        years = expected_age(ages)
        return [FaceEstimate(float(genders[i, 0]), float(years[i])) for i in range(len(landmarks))]


_demographics: dict[str, OnnxDemographics] = {}


def load_demographics(models: ModelSettings, models_dir: Path) -> OnnxDemographics:
    """The demographic networks, verified against the manifest and loaded once per process."""
    with _lock:
        key = str(models_dir)
        if key not in _demographics:
            gender, _ = verified_path(models_dir, GENDER_ID)
            age, _ = verified_path(models_dir, AGE_ID)
            _demographics[key] = OnnxDemographics(gender, age, models)
        return _demographics[key]


def cv2_threads(count: int) -> None:
    """Keep OpenCV's own thread pool in line with onnxruntime's (1 on the edge by default)."""
    cv2.setNumThreads(count)
