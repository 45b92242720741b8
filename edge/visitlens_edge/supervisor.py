"""The edge worker's main process: one process per camera plus the uploader, restarted with backoff
when they die; health and metrics; logging; a graceful stop on SIGTERM/SIGINT (cameras close their
open tracks into the queue, the uploader keeps delivering for the grace period)."""

from __future__ import annotations

import logging
import multiprocessing
import queue as queue_module
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from typing import Any

from visitlens_edge.camera import camera_main
from visitlens_edge.config import EdgeSettings
from visitlens_edge.health import State, serve
from visitlens_edge.logs import supervisor_logging
from visitlens_edge.queue import DiskQueue
from visitlens_edge.uploader import uploader_main

logger = logging.getLogger(__name__)
RESTART_MAX_S = 60.0


@dataclass(slots=True)
class Child:
    name: str
    target: Any
    args: tuple[Any, ...]
    finite: bool  # a file/folder camera ends by itself: no restart after a clean exit
    process: SpawnProcess | None = None
    failures: int = 0
    restart_at: float = 0.0
    done: bool = False


class Supervisor:
    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self.context = multiprocessing.get_context("spawn")
        self.reports: Any = self.context.Queue()
        self.state = State([c.name for c in settings.cameras])
        self._stopping = threading.Event()
        self.health_port: int | None = None

    def request_stop(self, *_: object) -> None:
        if not self._stopping.is_set():
            logger.info("stop requested: closing tracks and flushing the queue")
        self._stopping.set()

    def run(self) -> int:
        log_queue, listener = supervisor_logging(self.settings, self.context)
        server = serve(self.state, self.settings.health.host, self.settings.health.port)
        self.health_port = server.server_address[1]
        logger.info(
            "visitlens-edge: %d cameras, health on http://%s:%d/healthz",
            len(self.settings.cameras), self.settings.health.host, self.health_port,
        )  # fmt: skip
        # Created here once, before several processes open it; also how "done" is judged.
        self.queue = DiskQueue(
            self.settings.queue.dir, self.settings.queue.max_bytes, self.settings.hard_limit
        )
        cameras = [
            Child(
                f"camera-{c.name}", camera_main,
                (self.settings, c, self.reports, log_queue), not c.live,
            )
            for c in self.settings.cameras
        ]  # fmt: skip
        uploader = Child(
            "uploader", uploader_main, (self.settings, self.reports, log_queue),
            False,
        )  # fmt: skip
        children = [*cameras, uploader]
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        try:
            while not self._stopping.is_set():
                for child in children:
                    self._keep_alive(child)
                self._drain_reports(0.2)
                if self.settings.exit_when_done and all(c.done for c in cameras):
                    if self.queue.stats().depth == 0:
                        logger.info("every source has ended and the queue is empty")
                        break
            self._stop(cameras, timeout=30)  # cameras first: their open tracks go to the queue
            self._stop([uploader], timeout=self.settings.delivery.shutdown_grace_s + 30)
            self._drain_reports(0.0)
        finally:
            self.queue.close()
            server.shutdown()
            listener.stop()
        failed = [c.name for c in cameras if c.failures and not c.done]
        return 1 if failed else 0

    def _keep_alive(self, child: Child) -> None:
        if child.done:
            return
        process = child.process
        if process is not None and process.is_alive():
            return
        if process is not None:
            code = process.exitcode
            process.join()
            child.process = None
            if code == 0 and child.finite:
                child.done = True
                logger.info("%s finished its source", child.name)
                return
            child.failures += 1
            delay = min(RESTART_MAX_S, 2.0 ** min(child.failures, 6))
            child.restart_at = time.monotonic() + delay
            self.state.restarted(child.name)
            logger.error("%s exited with %s; restarting in %.0fs", child.name, code, delay)
        if time.monotonic() < child.restart_at:
            return
        process = self.context.Process(target=child.target, args=child.args, name=child.name)
        process.start()
        child.process = process

    def _drain_reports(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                report = (
                    self.reports.get(timeout=max(0.0, remaining))
                    if remaining > 0
                    else self.reports.get_nowait()
                )
            except queue_module.Empty:
                return
            self.state.update(report)

    def _stop(self, children: list[Child], timeout: float) -> None:
        """SIGTERM (a graceful stop), then wait; SIGKILL only after ``timeout``."""
        for child in children:
            if child.process is not None and child.process.is_alive():
                child.process.terminate()
        deadline = time.monotonic() + timeout
        for child in children:
            process = child.process
            if process is None:
                continue
            while process.is_alive() and time.monotonic() < deadline:
                process.join(0.2)
                self._drain_reports(0.0)
            if process.is_alive():
                logger.error("%s did not stop in time; killing it", child.name)
                process.kill()
                process.join(5)
