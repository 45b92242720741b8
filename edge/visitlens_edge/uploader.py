"""The uploader process: delivers the queue in order, oldest first, and keeps the staff gallery.

- A JWT from the worker's API key (``POST /v1/auth/token``), renewed before it expires and at
  once after a 401.
- Snapshots: a presigned URL from the API, then a PUT to S3; retried with the event; given up only
  when the server refuses for good (4xx), in which case the event goes without a snapshot key.
- Events: binary-mode CloudEvents (cloudevents SDK) over HTTP with timeouts. 2xx: done. 4xx other
  than 401/408/429: refused for good, kept in ``dead_letters`` with the reason. Anything else
  (5xx, 429, timeouts, no route): retried with exponential backoff and jitter, in order: nothing
  behind it overtakes it.
- A backlog (after an outage) goes as CloudEvents batches of the oldest events
  (``delivery.batch_max_events``/``batch_max_bytes``); the server answers each event, and each
  answer is handled as above.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from multiprocessing.queues import Queue
from typing import Any

import httpx
from cloudevents.conversion import to_binary, to_dict
from cloudevents.http import CloudEvent
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_when_event_set,
    wait_exponential_jitter,
)

from visitlens_edge import staff
from visitlens_edge.config import EdgeSettings
from visitlens_edge.queue import DiskQueue, Pending

logger = logging.getLogger(__name__)
RETRY_STATUSES = {401, 408, 425, 429}
BATCH = "application/cloudevents-batch+json"
SINGLE_AFTER_REFUSAL_S = 300.0
"""After the server refuses a batch as such, events go one by one for this long."""


class Transient(Exception):
    """Try again later (the network, the server, or an expired token)."""


class Refused(Exception):
    """The server refused for good."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class UploaderStats:
    state: str = "starting"
    delivered: int = 0
    dead_lettered: int = 0
    snapshots_uploaded: int = 0
    snapshots_given_up: int = 0
    retries: int = 0
    batches: int = 0
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    staff_gallery_version: int | None = None
    staff_gallery_synced_at: float | None = None


class TokenSource:
    def __init__(self, client: httpx.Client, settings: EdgeSettings) -> None:
        self._client = client
        self._settings = settings
        self._token: str | None = None
        self._renew_at = 0.0

    def header(self) -> dict[str, str]:
        if self._token is None or time.monotonic() >= self._renew_at:
            self._grant()
        return {"authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        self._token = None

    def _grant(self) -> None:
        body = {"grant_type": "api_key", "api_key": self._settings.api.key()}
        try:
            response = self._client.post("/v1/auth/token", json=body)
        except httpx.HTTPError as exc:
            raise Transient(f"token: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code in RETRY_STATUSES:
            raise Transient(f"token: HTTP {response.status_code}")
        if response.is_error:  # a revoked or wrong key: an operator must act; keep retrying slowly
            raise Transient(f"token refused: HTTP {response.status_code} {_detail(response)}")
        try:
            grant = response.json()
            token, lifetime = str(grant["access_token"]), float(grant["expires_in"])
        except (ValueError, KeyError, TypeError) as exc:  # a 2xx that is not a token: retry
            raise Transient(f"token: unexpected answer ({type(exc).__name__})") from exc
        self._token = token
        self._renew_at = time.monotonic() + 0.8 * lifetime
        logger.info("token granted (role %s, %ss)", grant.get("role"), lifetime)


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", ""))[:300]
    except ValueError:
        return response.text[:300]


class Uploader:
    def __init__(
        self,
        settings: EdgeSettings,
        stop: threading.Event,
        reports: Queue[dict[str, Any]] | None,
    ) -> None:
        self.settings = settings
        self.stop = stop
        self.reports = reports
        self.queue = DiskQueue(settings.queue.dir, settings.queue.max_bytes, settings.hard_limit)
        self.stats = UploaderStats()
        delivery = settings.delivery
        self.client = httpx.Client(
            base_url=settings.api.base_url.rstrip("/"),
            timeout=delivery.timeout_s,
            verify=delivery.verify_tls,
        )
        self.tokens = TokenSource(self.client, settings)
        self._next_gallery_sync = 0.0
        self._last_report = 0.0
        self._single_until = 0.0
        current = staff.load(settings.queue.dir)
        self._gallery_etag = current.etag if current else None
        if current is not None:
            self.stats.staff_gallery_version = current.version

    # --- one event ------------------------------------------------------------------------

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), **self.tokens.header()}
        try:
            response = self.client.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise Transient(f"{type(exc).__name__}") from exc
        if response.status_code == 401:
            self.tokens.invalidate()
        if response.status_code >= 500 or response.status_code in RETRY_STATUSES:
            raise Transient(f"HTTP {response.status_code} {_detail(response)}")
        if response.is_error:
            raise Refused(response.status_code, _detail(response))
        return response

    def _upload_snapshot(self, pending: Pending) -> str:
        assert pending.snapshot is not None
        path = (
            f"/v1/tenants/{self.settings.tenant_id}/sites/{self.settings.site_id}/cameras/"
            f"{pending.data['camera_id']}/snapshots"
        )
        answer = self._call(
            "POST",
            path,
            json={"track_id": pending.snapshot_track, "captured_at": pending.snapshot_time},
        )
        try:
            grant = answer.json()
            url, key = str(grant["url"]), str(grant["key"])
        except (ValueError, KeyError, TypeError) as exc:
            # A 2xx that is not an upload grant: the snapshot is given up, the event goes on
            # (retrying would hold every later event behind this one for good).
            raise Refused(answer.status_code, "unexpected answer to the snapshot request") from exc
        try:
            put = httpx.put(
                url,
                content=pending.snapshot,
                headers={"content-type": "image/jpeg"},
                timeout=self.settings.delivery.timeout_s,
                verify=self.settings.delivery.verify_tls,
            )
        except httpx.HTTPError as exc:
            raise Transient(f"snapshot upload: {type(exc).__name__}") from exc
        if put.status_code >= 500 or put.status_code in (403, 408, 429):  # 403: URL expired
            raise Transient(f"snapshot upload: HTTP {put.status_code}")
        if put.is_error:
            raise Refused(put.status_code, "snapshot upload refused")
        return key

    def _with_snapshot(self, pending: Pending) -> Pending:
        """Upload the event's snapshot first (if it has one); the event then names its key."""
        if pending.snapshot is None:
            return pending
        try:
            key: str | None = self._upload_snapshot(pending)
            self.stats.snapshots_uploaded += 1
        except Refused as exc:
            logger.warning("event %s: snapshot refused (%s); sent without", pending.event_id, exc)
            self.stats.snapshots_given_up += 1
            key = None
        self.queue.snapshot_done(pending.seq, key)
        return self.queue.get(pending.seq) or pending

    def deliver(self, seq: int) -> None:
        """One attempt at one queued event; raises Transient to be retried."""
        pending = self.queue.get(seq)
        if pending is None:
            return
        pending = self._with_snapshot(pending)
        headers, body = to_binary(CloudEvent(pending.attributes, pending.data))
        try:
            response = self._call(
                "POST", self.settings.api.events_path, headers=dict(headers), content=body
            )
        except Refused as exc:
            self._refused(pending, exc.status, exc.reason)
            return
        self._delivered(pending, response.status_code)

    def deliver_batch(self, seqs: list[int]) -> None:
        """One attempt at the oldest events as one CloudEvents batch; the server answers each.
        Counted ones are acknowledged, refused ones dead-lettered, the rest retried (Transient).
        A server that refuses the batch itself (one without batches, or a body it will not take)
        gets the events one by one for a while."""
        group = [p for p in map(self.queue.get, seqs) if p is not None]
        if not group:
            return
        sent: list[Pending] = []
        elements: list[str] = []
        size = 2
        for pending in group:
            pending = self._with_snapshot(pending)
            element = json.dumps(to_dict(CloudEvent(pending.attributes, pending.data)))
            if sent and size + len(element) + 1 > self.settings.delivery.batch_max_bytes:
                break
            sent.append(pending)
            elements.append(element)
            size += len(element) + 1
        body = ("[" + ",".join(elements) + "]").encode()
        try:
            response = self._call(
                "POST", self.settings.api.events_path, headers={"content-type": BATCH}, content=body
            )
        except Refused as exc:
            logger.warning("batch refused (%d: %s); sending one by one", exc.status, exc.reason)
            self._single_until = time.monotonic() + SINGLE_AFTER_REFUSAL_S
            self.deliver(sent[0].seq)
            return
        try:
            results = response.json()["results"]
            statuses = [int(r["status"]) for r in results]
            if len(statuses) != len(sent):
                raise ValueError("one result per event expected")
        except (ValueError, KeyError, TypeError) as exc:
            # A 2xx that answers no event: send them one by one (replays count nothing twice).
            self._single_until = time.monotonic() + SINGLE_AFTER_REFUSAL_S
            raise Transient(f"unexpected answer to a batch ({type(exc).__name__})") from exc
        self.stats.batches += 1
        retry = refused = 0
        for pending, status, result in zip(sent, statuses, results, strict=True):
            if 200 <= status < 300:
                self._delivered(pending, status)
            elif status >= 500 or status in RETRY_STATUSES:
                retry += 1
                self.queue.retry_later(pending.seq, f"HTTP {status}")
            else:
                refused += 1
                problem = result.get("problem") if isinstance(result, dict) else None
                detail = problem.get("detail", "") if isinstance(problem, dict) else ""
                self._refused(pending, status, str(detail)[:300])
        logger.info(
            "batch of %d events: %d counted, %d refused, %d to retry",
            len(sent), len(sent) - retry - refused, refused, retry,
        )  # fmt: skip
        if retry:
            raise Transient(f"{retry} event(s) of a batch to be retried")

    def _delivered(self, pending: Pending, status: int) -> None:
        self.queue.ack(pending.seq)
        self.stats.delivered += 1
        self.stats.last_success_at = time.time()
        logger.info("event %s delivered (%d)", pending.event_id, status)

    def _refused(self, pending: Pending, status: int, reason: str) -> None:
        self.queue.dead_letter(pending, status, reason)
        self.stats.dead_lettered += 1
        logger.error(
            "event %s refused by the server for good (%d): %s; kept in dead_letters",
            pending.event_id, status, reason,
        )  # fmt: skip

    # --- the staff gallery ------------------------------------------------------------------

    def sync_gallery(self) -> None:
        if not self.settings.staff.enabled or time.monotonic() < self._next_gallery_sync:
            return
        headers = {"if-none-match": self._gallery_etag} if self._gallery_etag else {}
        try:
            response = self._call(
                "GET",
                f"/v1/staff/{self.settings.tenant_id}/gallery",
                params={"site_id": str(self.settings.site_id)},
                headers=headers,
            )
        except (Transient, Refused) as exc:
            logger.warning("staff gallery not refreshed (%s); keeping the last copy", exc)
            self._next_gallery_sync = time.monotonic() + min(60.0, self.settings.staff.refresh_s)
            return
        self._next_gallery_sync = time.monotonic() + self.settings.staff.refresh_s
        self.stats.staff_gallery_synced_at = time.time()
        if response.status_code == 304:
            return
        try:
            gallery = staff.StaffGallery.from_body(response.json(), response.headers.get("etag"))
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("staff gallery answer unusable (%s); keeping the last copy",
                           type(exc).__name__)  # fmt: skip
            return
        staff.save(self.settings.queue.dir, gallery)
        self._gallery_etag = gallery.etag
        self.stats.staff_gallery_version = gallery.version
        logger.info(
            "staff gallery version %d saved (%d views)", gallery.version, len(gallery.staff_ids)
        )

    def request_gallery_sync(self) -> None:
        self._next_gallery_sync = 0.0

    # --- the loop ---------------------------------------------------------------------------

    def run_once(self, stop: threading.Event) -> bool:
        """Deliver the head of the queue (with a backlog: the oldest events as one batch),
        retrying with backoff; False when the queue is empty."""
        pending = self.queue.head()
        if pending is None:
            return False
        delivery = self.settings.delivery

        def failed(state: Any) -> None:
            exc = state.outcome.exception()
            self.stats.retries += 1
            self.stats.last_error = str(exc)[:300]
            self.stats.last_error_at = time.time()
            self.queue.retry_later(pending.seq, str(exc))
            if state.attempt_number == 1 or state.attempt_number % 10 == 0:
                logger.warning(
                    "event %s not delivered (attempt %d): %s; retrying",
                    pending.event_id, state.attempt_number, exc,
                )  # fmt: skip
            self._report()

        retrying = Retrying(
            retry=retry_if_exception_type(Transient),
            wait=wait_exponential_jitter(
                multiplier=delivery.backoff_initial_s,
                max=delivery.backoff_max_s,
                jitter=delivery.backoff_initial_s,
            ),
            stop=stop_when_event_set(stop),
            sleep=lambda seconds: stop.wait(seconds),  # type: ignore[arg-type]
            after=failed,
            reraise=False,
        )
        try:
            retrying(self._attempt)
        except RetryError:
            return False  # stopping: the event stays queued
        return True

    def _attempt(self) -> None:
        """The oldest events as one batch when more than one waits (the backlog grows while an
        outage lasts: chosen anew at every attempt), else the oldest alone."""
        batch = self.settings.delivery.batch_max_events
        single = batch <= 1 or time.monotonic() < self._single_until
        group = self.queue.heads(1 if single else batch)
        if len(group) > 1:
            self.deliver_batch([p.seq for p in group])
        elif group:
            self.deliver(group[0].seq)

    def run(self) -> None:
        """Deliver until stopped; after a stop, keep going for the grace period, then leave."""
        self.stats.state = "running"
        try:
            while not self.stop.is_set():
                self.sync_gallery()
                delivered = self.run_once(self.stop)
                self._report()
                if not delivered:
                    self.stop.wait(0.2)
            self._drain()
        finally:
            self.stats.state = "stopped"
            self._report(force=True)
            self.client.close()
            self.queue.close()

    def _drain(self) -> None:
        grace = self.settings.delivery.shutdown_grace_s
        if grace <= 0:
            return
        deadline = threading.Event()
        timer = threading.Timer(grace, deadline.set)
        timer.start()
        try:
            while not deadline.is_set() and self.run_once(deadline):
                pass
        finally:
            timer.cancel()
        left = self.queue.stats().depth
        if left:
            logger.info(
                "stopping with %d events queued on disk; they go out at the next start", left
            )

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.reports is None or (not force and now - self._last_report < 1.0):
            return
        self._last_report = now
        q = self.queue.stats()
        self.reports.put({"kind": "uploader", **asdict(self.stats), "queue": asdict(q)})


def uploader_main(
    settings: EdgeSettings,
    reports: Queue[dict[str, Any]],
    logs: Queue[Any],
) -> None:
    from visitlens_edge.camera import stop_on_sigterm
    from visitlens_edge.logs import child_logging

    stop = stop_on_sigterm()
    child_logging(logs, settings.log.level)
    Uploader(settings, stop, reports).run()
