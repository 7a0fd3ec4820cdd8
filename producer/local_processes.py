"""Run a worker, beat or Flower as a child process, for `mlq demo`, the tests and the
benchmarks. Each runs as its own program (``celery -A workers ...``): this module
never imports worker code.

The ``*_command`` functions are the commands; docker-compose.yml runs the same ones
(tests/unit/test_compose.py compares them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import TracebackType

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult

from shared.celery_app import app as default_app
from shared.contracts import QUEUES, TASK_ECHO
from shared.errors import MlqError

PRIVATE_QUEUE_PREFIX = "worker."


class WorkerStartError(MlqError):
    """The worker process did not become ready."""

    code = "worker_start"


def worker_command(
    *, concurrency: int, hostname: str, queues: tuple[str, ...], endpoints: tuple[str, ...] = ()
) -> list[str]:
    limited = [f"--endpoints={','.join(endpoints)}"] if endpoints else []
    return [
        "celery",
        "-A",
        "workers",
        "worker",
        "--loglevel=INFO",
        f"--concurrency={concurrency}",
        f"--hostname={hostname}",
        f"--queues={','.join(queues)}",
        "--without-gossip",
        "--without-mingle",
        *limited,
    ]


def beat_command() -> list[str]:
    return ["celery", "-A", "workers", "beat", "--loglevel=INFO"]


def flower_command(*, port: int) -> list[str]:
    return ["celery", "-A", "workers", "flower", f"--port={port}"]


def api_command(*, host: str, port: int, workers: int) -> list[str]:
    return ["mlq", "serve", "--host", host, "--port", str(port), "--workers", str(workers)]


class LocalProcess:
    """A child process with its output in a log file; ``ready`` says when it may be used."""

    name = "process"

    def __init__(self, command: list[str], *, log_path: Path, env: dict[str, str] | None) -> None:
        # `python -m celery` rather than the `celery` script: the same interpreter as ours.
        self.command = [sys.executable, "-m", *command]
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 90) -> LocalProcess:
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
        while not self.ready():
            if self.process.poll() is not None:
                raise WorkerStartError(
                    f"the {self.name} exited with code {self.process.returncode}; "
                    f"its log: {self.log_path}\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise WorkerStartError(
                    f"the {self.name} was not ready after {timeout:.0f}s; see {self.log_path}"
                )
            time.sleep(0.1)
        return self

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30) -> None:
        """Warm shutdown (SIGTERM lets running tasks finish), then SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        # Only the main process: a worker stops its pool children itself.
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> LocalProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LocalWorker(LocalProcess):
    """``celery -A workers worker``, ready once a task went through it.

    Usage::

        with LocalWorker(log_path=Path("worker.log"), concurrency=2):
            ...  # send tasks
    """

    name = "worker"

    def __init__(
        self,
        *,
        log_path: Path,
        concurrency: int = 1,
        queues: tuple[str, ...] = QUEUES,
        env: dict[str, str] | None = None,
        name: str = "local",
        app: Celery | None = None,
        endpoints: tuple[str, ...] = (),
    ) -> None:
        self.app = app or default_app
        # A queue only this worker consumes: readiness is proven through it, so another
        # worker on the same broker cannot answer for this one.
        self.private_queue = f"{PRIVATE_QUEUE_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
        command = worker_command(
            concurrency=concurrency,
            hostname=f"{name}@%h",
            queues=(*queues, self.private_queue),
            endpoints=endpoints,
        )
        super().__init__(command, log_path=log_path, env=env)
        self._probe: AsyncResult | None = None

    def ready(self) -> bool:
        """A task went through the broker, this worker and the result backend."""
        if self._probe is None:
            self._probe = self.app.send_task(TASK_ECHO, args=["ready?"], queue=self.private_queue)
        try:
            self._probe.get(timeout=0.5, interval=0.05)
        except CeleryTimeoutError:
            return False
        return True


class LocalBeat(LocalProcess):
    """``celery -A workers beat`` (the scheduler that ends A/B tests)."""

    name = "beat"

    def __init__(self, *, log_path: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(beat_command(), log_path=log_path, env=env)

    def ready(self) -> bool:
        return "beat: Starting" in self.log_path.read_text(errors="replace")


class LocalFlower(LocalProcess):
    """``celery -A workers flower`` on 127.0.0.1, ready once its health check answers."""

    name = "flower"

    def __init__(self, *, log_path: Path, port: int, env: dict[str, str] | None = None) -> None:
        super().__init__(
            [*flower_command(port=port), "--address=127.0.0.1"], log_path=log_path, env=env
        )
        self.url = f"http://127.0.0.1:{port}"

    def ready(self) -> bool:
        return _answers(f"{self.url}/healthcheck")


class LocalApi(LocalProcess):
    """``mlq serve`` on 127.0.0.1, ready once ``/health`` answers.

    Usage::

        with LocalApi(log_path=Path("api.log"), port=8000) as api:
            httpx.post(f"{api.url}/v1/endpoints/income_classifier/predictions", ...)
    """

    name = "api"

    def __init__(
        self, *, log_path: Path, port: int, workers: int = 1, env: dict[str, str] | None = None
    ) -> None:
        command = api_command(host="127.0.0.1", port=port, workers=workers)
        # `python -m producer.cli`: the `mlq` program of this interpreter.
        super().__init__(["producer.cli", *command[1:]], log_path=log_path, env=env)
        self.url = f"http://127.0.0.1:{port}"

    def ready(self) -> bool:
        return _answers(f"{self.url}/health")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
