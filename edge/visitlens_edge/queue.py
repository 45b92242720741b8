"""A durable, ordered on-disk queue of events (and their snapshots) in SQLite WAL mode.

Camera processes append; the uploader delivers the oldest event first and deletes it only after the
server accepted it (at-least-once; the server's (source, id) idempotency makes it exactly-once).

Disk policy: above ``max_bytes`` the oldest snapshots are dropped first (their events go out
without a snapshot key); events are never dropped to make room. Above the hard limit SQLite itself
refuses the write (``max_page_count``), exactly as on a full disk: the camera logs and counts the
lost event and health turns critical. Refused deliveries (4xx) go to ``dead_letters`` with the
reason, never silently away.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    camera TEXT NOT NULL,
    created_at REAL NOT NULL,
    attributes TEXT NOT NULL,
    data TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS snapshots (
    event_seq INTEGER PRIMARY KEY REFERENCES events (seq) ON DELETE CASCADE,
    track_id TEXT NOT NULL,
    captured_at TEXT NOT NULL,
    jpeg BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    attributes TEXT NOT NULL,
    data TEXT NOT NULL,
    status INTEGER,
    reason TEXT NOT NULL,
    failed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class QueueFull(Exception):
    """The queue (or the disk under it) cannot take another event."""


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    event_id: str
    attributes: dict[str, Any]
    data: dict[str, Any]
    attempts: int
    snapshot: bytes | None
    snapshot_track: str | None
    snapshot_time: str | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int
    snapshots: int
    bytes: int
    oldest_age_s: float | None
    dead_letters: int
    snapshots_dropped: int
    over_budget: bool


class DiskQueue:
    """One connection per process (SQLite handles several processes with WAL + busy timeout)."""

    def __init__(self, directory: Path, max_bytes: int, hard_limit_bytes: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "queue.sqlite3"
        self.max_bytes = max_bytes
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across process crashes
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._db.execute(f"PRAGMA max_page_count={max(hard_limit_bytes // page_size, 64)}")

    def close(self) -> None:
        self._db.close()

    # --- producers ----------------------------------------------------------------------

    def put(
        self,
        camera: str,
        attributes: dict[str, Any],
        data: dict[str, Any],
        snapshot: tuple[str, str, bytes] | None = None,
    ) -> int:
        """Append one event (and its snapshot: track id, time, JPEG) atomically."""
        try:
            with self._tx():
                cursor = self._db.execute(
                    "INSERT INTO events (event_id, camera, created_at, attributes, data) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
                    (
                        attributes["id"],
                        camera,
                        time.time(),
                        json.dumps(attributes),
                        json.dumps(data, separators=(",", ":")),
                    ),
                )
                seq = int(cursor.lastrowid or 0)
                if snapshot is not None and cursor.rowcount:
                    track_id, captured_at, jpeg = snapshot
                    self._db.execute(
                        "INSERT INTO snapshots (event_seq, track_id, captured_at, jpeg) "
                        "VALUES (?, ?, ?, ?)",
                        (seq, track_id, captured_at, jpeg),
                    )
        except sqlite3.OperationalError as exc:
            if "full" in str(exc).lower():
                self._bump("events_refused_full")
                raise QueueFull(str(exc)) from exc
            raise
        self.enforce_budget()
        return seq

    def enforce_budget(self) -> int:
        """Drop the oldest snapshots until the queue fits ``max_bytes``; how many were dropped."""
        dropped = 0
        while self.size_bytes() > self.max_bytes:
            row = self._db.execute("SELECT min(event_seq) FROM snapshots").fetchone()
            if row[0] is None:
                break
            with self._tx():
                self._db.execute("DELETE FROM snapshots WHERE event_seq = ?", (row[0],))
            dropped += 1
        if dropped:
            self._bump("snapshots_dropped", dropped)
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return dropped

    # --- the uploader ---------------------------------------------------------------------

    _SELECT = (
        "SELECT e.seq, e.event_id, e.attributes, e.data, e.attempts, s.jpeg, s.track_id, "
        "s.captured_at FROM events e LEFT JOIN snapshots s ON s.event_seq = e.seq "
    )

    def head(self) -> Pending | None:
        """The oldest queued event."""
        return self._pending(self._db.execute(self._SELECT + "ORDER BY e.seq LIMIT 1").fetchone())

    def heads(self, limit: int) -> list[Pending]:
        """The ``limit`` oldest queued events, oldest first."""
        rows = self._db.execute(self._SELECT + "ORDER BY e.seq LIMIT ?", (limit,)).fetchall()
        return [p for p in map(self._pending, rows) if p is not None]

    def get(self, seq: int) -> Pending | None:
        return self._pending(self._db.execute(self._SELECT + "WHERE e.seq = ?", (seq,)).fetchone())

    @staticmethod
    def _pending(row: Any) -> Pending | None:
        if row is None:
            return None
        return Pending(
            row[0], row[1], json.loads(row[2]), json.loads(row[3]), row[4], row[5], row[6], row[7]
        )

    def snapshot_done(self, seq: int, key: str | None) -> None:
        """The snapshot was uploaded under ``key`` (or given up: None); the event refers to it."""
        with self._tx():
            data = json.loads(
                self._db.execute("SELECT data FROM events WHERE seq = ?", (seq,)).fetchone()[0]
            )
            data["snapshot_key"] = key
            self._db.execute(
                "UPDATE events SET data = ? WHERE seq = ?",
                (json.dumps(data, separators=(",", ":")), seq),
            )
            self._db.execute("DELETE FROM snapshots WHERE event_seq = ?", (seq,))

    def ack(self, seq: int) -> None:
        with self._tx():
            self._db.execute("DELETE FROM events WHERE seq = ?", (seq,))
        self._bump("delivered")

    def retry_later(self, seq: int, error: str) -> None:
        """Count a failed attempt (bookkeeping only: on a full disk it is skipped)."""
        try:
            self._db.execute(
                "UPDATE events SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                (error[:500], seq),
            )
        except sqlite3.OperationalError as exc:
            if "full" not in str(exc).lower():
                raise
            logger.debug("attempt of event %d not recorded: disk full", seq)

    def dead_letter(self, pending: Pending, status: int | None, reason: str) -> None:
        """The server refused the event for good: keep it, with why, out of the delivery line."""
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO dead_letters (seq, event_id, attributes, data, status, "
                "reason, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    pending.seq,
                    pending.event_id,
                    json.dumps(pending.attributes),
                    json.dumps(pending.data),
                    status,
                    reason[:2000],
                    time.time(),
                ),
            )
            self._db.execute("DELETE FROM events WHERE seq = ?", (pending.seq,))

    # --- observation ----------------------------------------------------------------------

    def size_bytes(self) -> int:
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self._db.execute("PRAGMA page_size").fetchone()[0]
        wal = self.path.with_name(self.path.name + "-wal")
        wal_bytes = wal.stat().st_size if wal.exists() else 0
        return int((pages - free) * size + wal_bytes)

    def stats(self) -> QueueStats:
        depth, oldest = self._db.execute("SELECT count(*), min(created_at) FROM events").fetchone()
        snapshots = self._db.execute("SELECT count(*) FROM snapshots").fetchone()[0]
        dead = self._db.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        size = self.size_bytes()
        return QueueStats(
            depth=int(depth),
            snapshots=int(snapshots),
            bytes=size,
            oldest_age_s=(time.time() - oldest) if oldest is not None else None,
            dead_letters=int(dead),
            snapshots_dropped=self.counter("snapshots_dropped"),
            over_budget=size > self.max_bytes,
        )

    def counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, name: str, by: int = 1) -> None:
        try:
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                (name, by),
            )
        except sqlite3.OperationalError:  # a full disk must not hide the original error
            logger.debug("counter %s not updated", name)

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        if kind is None:
            self._db.execute("COMMIT")
        elif self._db.in_transaction:  # SQLite already rolled back after SQLITE_FULL
            self._db.execute("ROLLBACK")
