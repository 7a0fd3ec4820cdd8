"""PostgreSQL, Redis and RabbitMQ instances of a test's own (own port, own data
directory), for tests that stop or restart a service: the machine's shared services are
never touched. ``host`` binds one to another address than 127.0.0.1 (a bridge that test
hosts in network namespaces reach, tests/integration/test_hosts.py).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import amqp
import redis


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(check: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up in {timeout:.0f}s")
        time.sleep(0.1)


@dataclass(frozen=True)
class Certificates:
    """A certificate authority and a server certificate for 127.0.0.1 that it signed."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def make(cls, directory: Path) -> Certificates:
        if shutil.which("openssl") is None:
            raise RuntimeError("openssl is not installed")
        directory.mkdir(parents=True, exist_ok=True)
        ca, cert, key = directory / "ca.pem", directory / "server.pem", directory / "server.key"
        (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        for command in (
            f"req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mlq-test-ca "
            f"-keyout {directory / 'ca.key'} -out {ca}",
            f"req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout {key} "
            f"-out {directory / 'server.csr'}",
            f"x509 -req -days 2 -in {directory / 'server.csr'} -CA {ca} "
            f"-CAkey {directory / 'ca.key'} -CAcreateserial -out {cert} "
            f"-extfile {directory / 'san.cnf'}",
        ):
            subprocess.run(["openssl", *command.split()], check=True, capture_output=True)
        return cls(ca, cert, key)


class OwnRedis:
    """``redis-server`` on a free port, with or without appendonly persistence."""

    def __init__(
        self,
        directory: Path,
        *,
        appendonly: bool,
        password: str | None = None,
        tls: Certificates | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed")
        self.directory = directory
        self.appendonly = appendonly
        self.password = password
        self.tls = tls
        self.host = host
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    def _answers(self) -> bool:
        try:
            tls = {"ssl": True, "ssl_ca_certs": str(self.tls.ca)} if self.tls else {}
            client = redis.Redis(
                host=self.host, port=self.port, password=self.password, socket_timeout=1, **tls
            )
            return bool(client.ping())
        except redis.RedisError:
            return False

    def start(self) -> OwnRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                self.host,
                # Clients on another address than loopback (test hosts) may connect.
                "--protected-mode",
                "yes" if self.host == "127.0.0.1" else "no",
                *self._listen(),
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "always",
                "--maxmemory-policy",
                "noeviction",
                "--logfile",
                str(self.directory / "redis.log"),
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait(self._answers, f"redis on port {self.port}")
        except RuntimeError:
            self.stop()
            raise
        return self

    def _listen(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        return [
            "--port", "0",  # TLS only: no plain-text port at all
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.tls.cert),
            "--tls-key-file", str(self.tls.key),
            "--tls-ca-cert-file", str(self.tls.ca),
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # an appendonly file is flushed first
            self.process.wait(30)

    def restart(self, down_for: float = 1.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


class OwnPostgres:
    """A PostgreSQL cluster made by ``initdb`` in a temporary directory.

    Trust auth by default. With ``password`` and ``tls``: TCP connections must use TLS
    and the password (scram-sha-256); plain-text ones are rejected.
    """

    def __init__(
        self,
        directory: Path,
        *,
        password: str | None = None,
        tls: Certificates | None = None,
        host: str = "127.0.0.1",
        trust: str | None = None,
        settings: tuple[str, ...] = (),
    ) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        bindir = Path(found[-1]).parent if found else None
        if bindir is None and shutil.which("initdb"):
            bindir = Path(str(shutil.which("initdb"))).parent
        if bindir is None:
            raise RuntimeError("PostgreSQL's initdb is not installed")
        self.bindir = bindir
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        # PostgreSQL refuses to run as root: as root, run it as the postgres user.
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.password = password
        self.tls = tls
        self.host = host
        # A network (CIDR) whose clients are trusted too, beside 127.0.0.1.
        self.trust = trust
        self.settings = settings  # more server settings, "name=value" each

    @property
    def url(self) -> str:
        if self.password is None:
            return f"postgresql+psycopg://postgres@{self.host}:{self.port}/postgres"
        query = f"?sslmode=verify-full&sslrootcert={self.tls.ca}" if self.tls else ""
        return (
            f"postgresql+psycopg://postgres:{self.password}@127.0.0.1:{self.port}/postgres{query}"
        )

    def _chown(self, path: Path) -> None:
        if self.prefix:
            owner = pwd.getpwnam("postgres")
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self.prefix, str(self.bindir / args[0]), *args[1:]],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def _answers(self) -> bool:
        return (
            subprocess.run(
                [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
            ).returncode
            == 0
        )

    def start(self) -> OwnPostgres:
        if not self.data.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            self._chown(self.directory)
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
            if self.password is not None:
                self._secure()
            if self.trust is not None:
                with (self.data / "pg_hba.conf").open("a") as hba:
                    hba.write(f"host all all {self.trust} trust\n")
        listen = "127.0.0.1" if self.host == "127.0.0.1" else f"127.0.0.1,{self.host}"
        options = f"-p {self.port} -k {self.directory} -c listen_addresses={listen}"
        options += "".join(f" -c {setting}" for setting in self.settings)
        if self.tls:
            options += " -c ssl=on -c ssl_cert_file=server.pem -c ssl_key_file=server.key"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.directory / "log"), "-w",
            "start",
        )  # fmt: skip
        try:
            _wait(self._answers, f"PostgreSQL on port {self.port}")
        except RuntimeError:
            self.stop()
            raise
        if self.password is not None:
            self._run(
                "psql", "-h", str(self.directory), "-p", str(self.port), "-U", "postgres", "-c",
                f"ALTER USER postgres PASSWORD '{self.password}'",
            )  # fmt: skip
        return self

    def _secure(self) -> None:
        """Password over TLS for TCP; the local socket (used to set the password) trusts."""
        hostssl = "hostssl" if self.tls else "host"
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"{hostssl} all all 127.0.0.1/32 scram-sha-256\n"
            + ("hostnossl all all 127.0.0.1/32 reject\n" if self.tls else "")
        )
        if self.tls:
            for source, name in ((self.tls.cert, "server.pem"), (self.tls.key, "server.key")):
                target = self.data / name
                shutil.copy(source, target)
                target.chmod(0o600)
                self._chown(target)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self, down_for: float = 2.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # Debian's, without the su wrapper


class OwnRabbit:
    """A RabbitMQ node of a test's own: its own node name, AMQP and distribution ports,
    data (mnesia) and log directories, Erlang cookie and no plugins; the machine's shared
    node is never touched. Its data outlives ``restart`` (quorum queues are on disk).
    Starting takes a few seconds.
    """

    def __init__(
        self, directory: Path, *, host: str = "127.0.0.1", heartbeat: int | None = None
    ) -> None:
        server = RABBITMQ_SERVER if Path(RABBITMQ_SERVER).exists() else None
        server = server or shutil.which("rabbitmq-server")
        if server is None:
            raise RuntimeError("rabbitmq-server is not installed")
        self.server = server
        self.directory = directory
        self.host = host
        # The AMQP heartbeat the node offers (its default: 60 s); clients take the lower
        # of theirs and this, and a client silent for two beats is taken for gone.
        self.heartbeat = heartbeat
        self.port = free_port()
        self.dist_port = free_port()
        self.node = f"mlqtest{self.port}@localhost"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}//"

    def _answers(self) -> bool:
        connection = amqp.Connection(
            f"{self.host}:{self.port}", userid="guest", password="guest", connect_timeout=1
        )
        try:
            connection.connect()
            return True
        except (OSError, amqp.exceptions.AMQPError):
            return False
        finally:
            with contextlib.suppress(Exception):
                connection.collect()

    def _environment(self) -> dict[str, str]:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "enabled_plugins").write_text("[].\n")
        # guest may connect from anywhere: test hosts reach the node over a bridge.
        config = "loopback_users = none\n"
        if self.heartbeat is not None:
            config += f"heartbeat = {self.heartbeat}\n"
        (self.directory / "rabbitmq.conf").write_text(config)
        return {
            **os.environ,
            "HOME": str(self.directory),  # its own Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_PID_FILE": str(self.directory / "rabbitmq.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.directory / "rabbitmq"),
            "RABBITMQ_CONF_ENV_FILE": "/dev/null",  # not the machine's node's settings
        }

    def start(self, *, wait: bool = True) -> OwnRabbit:
        """Start the node; with ``wait=False`` return at once (``wait`` later)."""
        environment = self._environment()
        with (self.directory / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [self.server],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.wait() if wait else self

    def wait(self, timeout: float = 60) -> OwnRabbit:
        """Until the node answers AMQP."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"rabbitmq node {self.node} did not come up; see {self.directory}/server.log"
                )
            time.sleep(0.2)
        return self

    def stop(self, *, graceful: bool = True) -> None:
        """Shut down cleanly (SIGTERM: the node stops its queues), SIGKILL if it hangs;
        ``graceful=False``: SIGKILL at once (a test's end, its data thrown away)."""
        if self.process is None or self.process.poll() is not None:
            return
        if not graceful:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def restart(self, down_for: float = 1.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def queue_depth(self, name: str) -> int:
        """Messages ready in a queue (a passive declare: the queue must exist)."""
        with amqp.Connection(f"{self.host}:{self.port}", userid="guest", password="guest") as c:
            return int(c.channel().queue_declare(name, passive=True).message_count)


class OwnBroker:
    """The broker and result backend of one test: ``redis`` (one Redis, databases 0 and
    1) or ``rabbitmq`` (a RabbitMQ node, with a Redis as the result backend, as
    docker-compose.rabbitmq.yml deploys them)."""

    def __init__(
        self,
        kind: str,
        directory: Path,
        *,
        appendonly: bool = False,
        host: str = "127.0.0.1",
        heartbeat: int | None = None,
    ) -> None:
        self.kind = kind
        self.backend = OwnRedis(directory / "redis", appendonly=appendonly, host=host)
        self.broker: OwnRedis | OwnRabbit
        if kind == "redis":
            self.broker = self.backend
        elif kind == "rabbitmq":
            self.broker = OwnRabbit(directory / "rabbitmq", host=host, heartbeat=heartbeat)
        else:
            raise ValueError(f"unknown broker {kind!r}")

    @property
    def broker_url(self) -> str:
        return f"{self.broker.url}/0" if self.kind == "redis" else self.broker.url

    @property
    def backend_url(self) -> str:
        return f"{self.backend.url}/1"

    def start(self, *, wait: bool = True) -> OwnBroker:
        """Start both; with ``wait=False`` RabbitMQ goes on starting (``wait`` later)."""
        self.backend.start()
        if isinstance(self.broker, OwnRabbit):
            try:
                self.broker.start(wait=wait)
            except BaseException:
                self.backend.stop()
                raise
        return self

    def wait(self) -> OwnBroker:
        if isinstance(self.broker, OwnRabbit):
            self.broker.wait()
        return self

    def stop(self) -> None:
        """The end of a test: RabbitMQ is killed (its data is thrown away), Redis stopped."""
        if isinstance(self.broker, OwnRabbit):
            self.broker.stop(graceful=False)
        self.backend.stop()
