"""The site's staff gallery on the device: downloaded by the uploader (versioned, ETag), kept in a
file so that it survives restarts and outages, re-read by the camera processes when it changes.

Staff tracks never leave the device as customer events: only a count of staff sightings."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visitlens.vision.types import Floats

logger = logging.getLogger(__name__)
GALLERY_FILE = "staff-gallery.json"


@dataclass(frozen=True, slots=True)
class StaffGallery:
    version: int
    model_id: str
    staff_ids: tuple[str, ...]  # one per row of ``vectors``
    vectors: Floats  # n x dim, L2-normalised
    etag: str | None = None
    threshold: float | None = None  # the server's staff threshold (one source of truth)

    @classmethod
    def empty(cls, model_id: str = "") -> StaffGallery:
        return cls(-1, model_id, (), np.zeros((0, 0), np.float32))

    @classmethod
    def from_body(cls, body: dict[str, Any], etag: str | None) -> StaffGallery:
        entries = body.get("entries", [])
        vectors = np.asarray([e["embedding"] for e in entries], np.float32).reshape(
            len(entries), -1
        )
        threshold = body.get("staff_match_threshold")
        return cls(
            int(body["version"]),
            str(body["model_id"]),
            tuple(str(e["staff_id"]) for e in entries),
            vectors,
            etag,
            float(threshold) if isinstance(threshold, int | float) else None,
        )

    def to_body(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "model_id": self.model_id,
            "etag": self.etag,
            "staff_match_threshold": self.threshold,
            "entries": [
                {"staff_id": sid, "embedding": vec.tolist()}
                for sid, vec in zip(self.staff_ids, self.vectors, strict=True)
            ],
        }

    def best_match(self, shots: Floats, model_id: str) -> tuple[str | None, float]:
        """The staff member whose views best match a track's shots: (id, similarity).

        Per staff member: the mean over shots of the best view similarity (one lucky shot is not
        enough). Embeddings of another model never compare: no match.
        """
        if (
            not self.staff_ids
            or model_id != self.model_id
            or shots.shape[1] != self.vectors.shape[1]
        ):
            return None, -1.0
        similarities = shots @ self.vectors.T  # shots x views
        best_id, best = None, -1.0
        for sid in set(self.staff_ids):
            columns = [i for i, s in enumerate(self.staff_ids) if s == sid]
            score = float(similarities[:, columns].max(axis=1).mean())
            if score > best:
                best_id, best = sid, score
        return best_id, best


def save(directory: Path, gallery: StaffGallery) -> None:
    """Atomically replace the file (write, fsync, rename): readers never see half a gallery."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".staff-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(gallery.to_body(), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, directory / GALLERY_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(directory: Path) -> StaffGallery | None:
    path = directory / GALLERY_FILE
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.error(
            "staff gallery file unreadable (%s); staff filtering is off", type(exc).__name__
        )
        return None
    return StaffGallery.from_body(body, body.get("etag"))


class GalleryFile:
    """A camera process's view of the gallery file, re-read when its mtime changes."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._mtime = -1.0
        self.gallery = StaffGallery.empty()

    def refresh(self) -> StaffGallery:
        path = self._directory / GALLERY_FILE
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return self.gallery
        if mtime != self._mtime:
            loaded = load(self._directory)
            if loaded is not None:
                if loaded.version != self.gallery.version:
                    logger.info(
                        "staff gallery version %d: %d views of %d people",
                        loaded.version, len(loaded.staff_ids), len(set(loaded.staff_ids)),
                    )  # fmt: skip
                self.gallery = loaded
            self._mtime = mtime
        return self.gallery
