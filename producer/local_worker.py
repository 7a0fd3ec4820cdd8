"""Start and stop a worker as a child process, for `mlq demo` and the tests.

The worker runs as its own program (``celery -A workers worker``): this module never
imports worker code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError

from shared.celery_app import app as default_app
from shared.contracts import QUEUES, TASK_ECHO
from shared.errors import MlqError

PRIVATE_QUEUE_PREFIX = "worker."


class WorkerStartError(MlqError):
    """The worker process did not become ready."""

    code = "worker_start"


class LocalWorker:
    """A ``celery -A workers worker`` child process with its log in a file.

    Usage::

        with LocalWorker(log_path=Path("worker.log"), concurrency=2) as worker:
            ...  # send tasks
    """

    def __init__(
        self,
        *,
        log_path: Path,
        concurrency: int = 1,
        queues: tuple[str, ...] = QUEUES,
        env: dict[str, str] | None = None,
        name: str = "local",
        app: Celery | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.log_path = log_path
        self.app = app or default_app
        # A queue only this worker consumes: readiness is proven through it, so another
        # worker on the same broker cannot answer for this one.
        self.private_queue = f"{PRIVATE_QUEUE_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
        self.command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers",
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency}",
            f"--hostname={name}@%h",
            f"--queues={','.join((*queues, self.private_queue))}",
            "--without-gossip",
            "--without-mingle",
            *extra_args,
        ]
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> LocalWorker:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Ready means a task went through the broker, the worker and the result backend."""
        deadline = time.monotonic() + timeout
        pending = self.app.send_task(TASK_ECHO, args=["ready?"], queue=self.private_queue)
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise WorkerStartError(
                    f"the worker exited with code {self.process.returncode}; "
                    f"its log: {self.log_path}\n{self.log_tail()}"
                )
            try:
                pending.get(timeout=0.5, interval=0.05)
                return
            except CeleryTimeoutError:
                continue
        self.stop()
        raise WorkerStartError(
            f"the worker was not ready after {timeout:.0f}s; see {self.log_path}"
        )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30) -> None:
        """Warm shutdown (SIGTERM lets running tasks finish), then SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        # Only the main process: it stops its pool children itself.
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> LocalWorker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LocalBeat:
    """A ``celery -A workers beat`` child process (the scheduler that ends A/B tests).

    Usage::

        with LocalBeat(log_path=Path("beat.log")):
            ...
    """

    def __init__(self, *, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self.command = [sys.executable, "-m", "celery", "-A", "workers", "beat", "--loglevel=INFO"]
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> LocalBeat:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while "beat: Starting" not in self.log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise WorkerStartError(f"beat did not start; see {self.log_path}")
            time.sleep(0.1)
        return self

    def stop(self, timeout: float = 15) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> LocalBeat:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
