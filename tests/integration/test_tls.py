"""Redis and PostgreSQL that require a password and TLS: the URLs of the README's
production section work for every part (migration, worker, producer, results), and
nothing reaches either service in plain text."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from celery import Celery
from sqlalchemy import create_engine, text

from producer.local_processes import LocalWorker
from shared.contracts import EXAMPLE_RECORD
from tests.integration.conftest import run_mlq
from tests.integration.own_services import Certificates, OwnPostgres, OwnRedis

pytestmark = pytest.mark.integration

REDIS_PASSWORD = "tls-redis-pw"
DATABASE_PASSWORD = "tls-pg-pw"


@pytest.fixture(scope="module")
def certificates() -> Certificates:
    try:
        return Certificates.make(Path(tempfile.mkdtemp(prefix="mlq-tls-")))
    except (RuntimeError, OSError) as error:
        pytest.fail(f"cannot make test certificates: {error}", pytrace=False)


@pytest.fixture(scope="module")
def secure_services(certificates: Certificates) -> Iterator[tuple[OwnRedis, OwnPostgres]]:
    redis_server = OwnRedis(
        Path(tempfile.mkdtemp(prefix="mlq-tls-redis-")),
        appendonly=False,
        password=REDIS_PASSWORD,
        tls=certificates,
    ).start()
    try:
        postgres = OwnPostgres(
            Path(tempfile.mkdtemp(prefix="mlq-tls-pg-")),
            password=DATABASE_PASSWORD,
            tls=certificates,
        ).start()
    except BaseException:
        redis_server.stop()
        raise
    yield redis_server, postgres
    postgres.stop()
    redis_server.stop()
    for directory in (redis_server.directory, postgres.directory):
        shutil.rmtree(directory, ignore_errors=True)


def test_the_whole_flow_runs_over_tls_with_passwords(
    secure_services: tuple[OwnRedis, OwnPostgres],
    certificates: Certificates,
    artifacts_dir: Path,
    tmp_path: Path,
) -> None:
    redis_server, postgres = secure_services
    tls = f"ssl_cert_reqs=required&ssl_ca_certs={certificates.ca}"
    base = f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{redis_server.port}"
    env = {
        "MLQ_BROKER_URL": f"{base}/0?{tls}",
        "MLQ_RESULT_BACKEND": f"{base}/1?{tls}",
        "MLQ_DATABASE_URL": postgres.url,
        "MLQ_HOME": str(tmp_path),
        "MLQ_ARTIFACTS_DIR": str(artifacts_dir),
    }
    migrated = run_mlq("db", "upgrade", env=env)
    assert migrated.returncode == 0, migrated.stderr
    registered = run_mlq("train", env=env)  # the trained bundles, registered: no training
    assert registered.returncode == 0, registered.stderr
    app = Celery("tls")
    app.config_from_object("celeryconfig")
    app.conf.update(broker_url=env["MLQ_BROKER_URL"], result_backend=env["MLQ_RESULT_BACKEND"])
    with LocalWorker(log_path=tmp_path / "worker.log", env=env, name="tls", app=app):
        predicted = run_mlq(
            "predict", "--record", json.dumps(EXAMPLE_RECORD), "--wait", "--json", env=env
        )
        assert predicted.returncode == 0, predicted.stderr
        result = json.loads(predicted.stdout)
        assert result["status"] == "OK"
        again = run_mlq("result", result["request_id"], "--json", env=env)
        assert json.loads(again.stdout)["label"] == result["label"]
        engine = create_engine(postgres.url)
        with engine.connect() as connection:
            # The worker's pool and this connection: encrypted (pg_hba refuses the rest).
            plain, encrypted = connection.execute(
                text(
                    "SELECT count(*) FILTER (WHERE NOT s.ssl), count(*) FILTER (WHERE s.ssl)"
                    " FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
                    " WHERE a.client_addr IS NOT NULL"
                )
            ).one()
            rows = connection.execute(text("SELECT count(*) FROM ml_request")).scalar_one()
        engine.dispose()
        assert plain == 0 and encrypted >= 2
        assert rows == 1


def test_plain_text_and_wrong_passwords_are_refused(
    secure_services: tuple[OwnRedis, OwnPostgres], certificates: Certificates
) -> None:
    redis_server, postgres = secure_services
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=redis_server.port, password=REDIS_PASSWORD, socket_timeout=2).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(
            port=redis_server.port, password="wrong", ssl=True, ssl_ca_certs=str(certificates.ca)
        ).ping()
    conninfo = f"host=127.0.0.1 port={postgres.port} user=postgres password={DATABASE_PASSWORD}"
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(f"{conninfo} sslmode=disable").close()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            f"host=127.0.0.1 port={postgres.port} user=postgres password=wrong sslmode=require"
        ).close()
