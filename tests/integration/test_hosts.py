"""Workers on several hosts: network namespaces that the test makes on this machine.

Each "host" is a network namespace joined to a bridge in the root namespace by a veth
pair, with its own address in 198.18.N.0/24 (the range set aside for network tests,
N from this process's id). The test's own PostgreSQL and Redis (the broker and the
result backend) listen on the bridge's address, so every host reaches them over its own
interface, as a worker on another machine would. Each host runs a worker with an empty
MLQ_HOME (so an empty model cache) and no artifacts folder: it gets its models from the
shared model store in PostgreSQL.

A batch is scored across the hosts; mid-batch one host is cut off: its link goes down
(a network partition: nothing it holds can be acknowledged or returned) and every
process in it is killed. It runs on RabbitMQ, and on Redis too with
``MLQ_TEST_HOSTS_BROKERS=redis,rabbitmq`` (CI runs RabbitMQ only, to keep the suite's
time). The messages the cut host held come back, and the other host finishes them:

- on Redis, after the visibility timeout, set short here (MLQ_VISIBILITY_TIMEOUT=20 s;
  the workers look for expired messages every 10 s);
- on RabbitMQ, once the broker takes the silent connection for dead: after two missed
  AMQP heartbeats, the heartbeat set short here (5 s, the node's ``heartbeat``; its
  default is 60 s). No timeout of mlqueue's is involved.
PostgreSQL's TCP keepalives are short too (5 s idle, 2 probes 2 s apart), so a
transaction the cut host left open is rolled back in seconds rather than the system's
two hours; docs/deploy.md says to set the same in production.

Needs root and iproute2 (``ip netns``); in CI a missing capability fails the test.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import create_engine, text

from producer.local_processes import LocalWorker
from shared.broker import broker_options
from shared.contracts import QUEUE_BATCH
from shared.settings import get_settings
from tests.integration.conftest import run_mlq, start_own_broker
from tests.integration.own_services import OwnBroker, OwnPostgres
from workers.training import ADULT_DATA, TARGET, read_adult

pytestmark = pytest.mark.integration

HOSTS = 2
RECORDS = 30_000
CHUNK = 500
TAG = f"{os.getpid() % 100000}"
SUBNET = f"198.18.{os.getpid() % 250 + 1}"
# One network per test: the next one (the other broker) must not meet the links of the
# last, which the kernel may still be tearing down.
NETWORKS = itertools.count()


def _missing(what: str) -> None:
    message = f"workers on several hosts: {what}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def peers(port: int) -> set[str]:
    """The addresses connected to a local port."""
    done = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {line.split()[-1].rsplit(":", 1)[0] for line in done.stdout.splitlines() if line}


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


class Network:
    """A bridge with the services' address, and one namespace per host joined to it."""

    def __init__(self, hosts: int) -> None:
        self.tag = f"{TAG}{next(NETWORKS)}"
        self.bridge = f"mlqbr{self.tag}"
        self.address = f"{SUBNET}.1"
        self.hosts = [f"mlqhost{self.tag}-{i}" for i in range(hosts)]

    def host_address(self, i: int) -> str:
        return f"{SUBNET}.{10 + i}"

    def outside(self, i: int) -> str:  # the veth end on the bridge
        return f"mlqv{self.tag}o{i}"

    def up(self) -> Network:
        ip("link", "add", "name", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.address}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for i, namespace in enumerate(self.hosts):
            inside = f"mlqv{self.tag}i{i}"
            ip("netns", "add", namespace)
            ip("link", "add", self.outside(i), "type", "veth", "peer", "name", inside)
            ip("link", "set", inside, "netns", namespace)
            ip("link", "set", self.outside(i), "master", self.bridge, "up")
            ip("-n", namespace, "addr", "add", f"{self.host_address(i)}/24", "dev", inside)
            ip("-n", namespace, "link", "set", inside, "up")
            ip("-n", namespace, "link", "set", "lo", "up")
        return self

    def pids(self, i: int) -> list[int]:
        done = subprocess.run(
            ["ip", "netns", "pids", self.hosts[i]], capture_output=True, text=True
        )
        return [int(pid) for pid in done.stdout.split()]

    def cut(self, i: int) -> None:
        """The host's link goes down, then every process in it is killed."""
        ip("link", "set", self.outside(i), "down")
        for pid in self.pids(i):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def down(self) -> None:
        for i, namespace in enumerate(self.hosts):
            for pid in self.pids(i):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
            subprocess.run(["ip", "link", "del", self.outside(i)], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


@pytest.fixture
def network() -> Iterator[Network]:
    if os.geteuid() != 0:
        _missing("network namespaces need root")
    if shutil.which("ip") is None:
        _missing("iproute2's `ip` is not installed")
    network = Network(HOSTS)
    try:
        network.up()
    except RuntimeError as error:
        network.down()
        _missing(f"cannot make network namespaces here: {error}")
    yield network
    network.down()


@pytest.fixture
def services(
    network: Network, tmp_path: Path, broker_kind: str
) -> Iterator[tuple[OwnPostgres, OwnBroker]]:
    directory = Path(tempfile.mkdtemp(prefix="mlq-hosts-pg-"))
    postgres = OwnPostgres(
        directory,
        host=network.address,
        trust=f"{SUBNET}.0/24",
        settings=(
            "tcp_keepalives_idle=5",
            "tcp_keepalives_interval=2",
            "tcp_keepalives_count=2",
            "tcp_user_timeout=5000",  # ms: data sent and never acknowledged
        ),
    ).start()
    try:
        broker = start_own_broker(
            broker_kind, tmp_path / "broker", host=network.address, heartbeat=5
        )
        try:
            yield postgres, broker
        finally:
            broker.stop()
    finally:
        postgres.stop()
        shutil.rmtree(directory, ignore_errors=True)


HOSTS_BROKERS = os.environ.get("MLQ_TEST_HOSTS_BROKERS", "rabbitmq").split(",")


@pytest.mark.parametrize("broker_kind", HOSTS_BROKERS)
@pytest.mark.timeout(300)
def test_a_host_cut_off_mid_batch_loses_and_doubles_nothing(
    network: Network,
    services: tuple[OwnPostgres, OwnBroker],
    artifacts_dir: Path,
    tmp_path: Path,
) -> None:
    postgres, broker = services
    env = {
        "MLQ_BROKER_URL": broker.broker_url,
        "MLQ_RESULT_BACKEND": broker.backend_url,
        "MLQ_DATABASE_URL": postgres.url,
        # Redis: the cut host's messages come back after the visibility timeout, short
        # here; it must exceed the task time limit. RabbitMQ needs neither short: it
        # hands them out again at once (after the heartbeat), and the time limit must
        # then outlast the cut host's PostgreSQL session, whose locks the redelivered
        # chunk may wait for until the server's keepalive ends it (seen once: a 15 s
        # limit killed such a chunk, which was then acknowledged without rows).
        "MLQ_VISIBILITY_TIMEOUT": "20" if broker.kind == "redis" else "90",
        "MLQ_TASK_TIME_LIMIT": "15" if broker.kind == "redis" else "60",
        "MLQ_SOFT_TIME_LIMIT": "12" if broker.kind == "redis" else "55",  # below it
        # Where leases are renewed (a third of the visibility timeout at most), and no
        # counting Redis of the tests' own: a host reaches only the bridge's address.
        "MLQ_LEASE_SECONDS": "5",
        "MLQ_TEST_COUNTS_URL": "",
    }
    # The models, registered from this (the producer's) host into the shared store.
    setup_home = {"MLQ_HOME": str(tmp_path / "producer"), "MLQ_ARTIFACTS_DIR": str(artifacts_dir)}
    for command in (("db", "upgrade"), ("train",)):
        done = run_mlq(*command, env={**env, **setup_home})
        assert done.returncode == 0, done.stderr
    app = Celery("hosts")
    app.config_from_object("celeryconfig")
    app.conf.update(broker_options(get_settings(), broker.broker_url).as_celery())
    app.conf.update(result_backend=broker.backend_url)

    workers = []
    for i, namespace in enumerate(network.hosts):
        home = tmp_path / f"host{i}"
        empty_artifacts = home / "no-artifacts"
        empty_artifacts.mkdir(parents=True)
        host_env = {**env, "MLQ_HOME": str(home), "MLQ_ARTIFACTS_DIR": str(empty_artifacts)}
        worker = LocalWorker(
            log_path=tmp_path / f"host{i}.log",
            concurrency=2,
            queues=(QUEUE_BATCH,),
            env=host_env,
            name=f"host{i}",
            app=app,
        )
        worker.command = ["ip", "netns", "exec", namespace, *worker.command]
        assert not (home / "model-cache").exists()  # an empty model cache
        workers.append(worker.start(timeout=120))

    engine = create_engine(postgres.url)

    def rows() -> tuple[int, int]:
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT count(*), count(DISTINCT batch_position) FROM ml_request"
                    " WHERE batch_id = 'hosts'"
                )
            ).one()
        return int(row[0]), int(row[1])

    try:
        for i in range(HOSTS):
            assert "fetched" in workers[i].log_path.read_text()  # from the model store
            assert any((tmp_path / f"host{i}" / "model-cache").iterdir())

        records = tmp_path / "records.csv"
        frame = read_adult(ADULT_DATA).drop(columns=[TARGET])
        frame.loc[frame.index.repeat(-(-RECORDS // len(frame)))].head(RECORDS).to_csv(
            records, index=False
        )
        submit = ["batch", "submit", str(records), "--batch-id", "hosts"]
        submit += ["--chunk-size", str(CHUNK)]
        submitted_at = time.monotonic()
        # In the background: the hosts score the first chunks while the rest are sent.
        submitting = subprocess.Popen(
            [sys.executable, "-m", "producer.cli", *submit],
            env={**os.environ, **env, **setup_home},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

        # Cut host 0 once it has finished some chunks (and holds others).
        # A chunk's task id ends with its first record's position.
        finished = re.compile(r"Task mlq\.predict_batch\[hosts:chunk:(\d+)\] succeeded")
        deadline = time.monotonic() + 120
        while len(finished.findall(workers[0].log_path.read_text())) < 2:
            assert time.monotonic() < deadline, "host 0 finished no chunk"
            time.sleep(0.05)
        # Every host reaches PostgreSQL and the broker from its own address.
        with engine.connect() as connection:
            clients = set(
                connection.execute(
                    text("SELECT DISTINCT host(client_addr) FROM pg_stat_activity")
                ).scalars()
            )
        hosts = {network.host_address(i) for i in range(HOSTS)}
        assert hosts <= clients, clients
        assert hosts <= peers(broker.broker.port)
        network.cut(0)
        cut_at = time.monotonic()
        done_by_cut_host = sorted(int(n) for n in finished.findall(workers[0].log_path.read_text()))
        rows_at_cut = rows()[0]
        assert rows_at_cut < RECORDS, "the batch ended before the cut"
        _, errors = submitting.communicate(timeout=180)  # from the producer's host
        assert submitting.returncode == 0, errors

        deadline = time.monotonic() + 90
        while rows()[0] < RECORDS and time.monotonic() < deadline:
            time.sleep(0.2)
        stalled = rows()[0] < RECORDS
        if stalled:
            assert broker.kind == "redis", f"stalled at {rows()[0]} rows on {broker.kind}"
            # kombu's Redis transport can lose a message popped but not yet recorded as
            # unacknowledged (test_faults.py, kill-all): the documented remedy.
            done = run_mlq(*submit, env={**env, **setup_home}, timeout=180)
            assert done.returncode == 0, done.stderr
            deadline = time.monotonic() + 60
            while rows()[0] < RECORDS and time.monotonic() < deadline:
                time.sleep(0.2)
        time.sleep(1)  # a late second write would show now
        count, positions = rows()
        assert (count, positions) == (RECORDS, RECORDS)
        with engine.connect() as connection:
            per_position = connection.execute(
                text(
                    "SELECT min(batch_position), max(batch_position), max(n) FROM (SELECT"
                    " batch_position, count(*) AS n FROM ml_request WHERE batch_id = 'hosts'"
                    " GROUP BY batch_position) AS p"
                )
            ).one()
            # The cut host's finished chunks are in the database, written by it.
            written = connection.execute(
                text(
                    "SELECT count(*) FROM ml_request WHERE batch_id = 'hosts' AND status = 'OK'"
                    " AND batch_position - batch_position % :chunk = ANY(:starts)"
                ),
                {"chunk": CHUNK, "starts": done_by_cut_host},
            ).scalar_one()
        assert tuple(per_position) == (0, RECORDS - 1, 1)  # each position exactly once
        assert written == len(done_by_cut_host) * CHUNK
        survivor = workers[1].log_path.read_text()
        assert "redelivered" in survivor or stalled
        print(
            f"\n[hosts] {broker.kind}: {HOSTS} hosts, records {RECORDS}, rows {count}, "
            f"distinct positions {positions}, lost {RECORDS - positions}, "
            f"doubled {count - positions}; host 0 "
            f"finished {len(done_by_cut_host)} chunks ({written} rows) before it was cut, "
            f"{rows_at_cut} rows in all at the cut; the rest finished "
            f"{time.monotonic() - cut_at:.1f} s after the cut "
            f"({time.monotonic() - submitted_at:.1f} s after submit); "
            f"redeliveries on host 1: {survivor.count('): redelivered, delivery')}; "
            f"submitted again: {stalled}"
        )
    finally:
        for worker in workers:
            if worker.process and worker.process.poll() is None:
                worker.stop()
        engine.dispose()
