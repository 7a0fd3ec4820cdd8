"""Settings: embedded defaults, URL handling, and refusal of unsafe values."""

from __future__ import annotations

import pytest

from shared.errors import ConfigurationError
from shared.settings import Settings, normalise_database_url, redact_url

URL_VARIABLES = ("MLQ_BROKER_URL", "MLQ_RESULT_BACKEND", "MLQ_DATABASE_URL", "MLQ_HOME")


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for name in URL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLQ_HOME", str(tmp_path))


def test_with_nothing_set_everything_is_local_files(bare_env: None, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings.from_env()
    assert settings.broker_url == f"sqlite:///{tmp_path}/broker.sqlite"
    assert settings.result_backend == f"db+sqlite:///{tmp_path}/results.sqlite"
    assert settings.database_url == f"sqlite:///{tmp_path}/mlqueue.sqlite"
    assert settings.broker_is_embedded


def test_servers_are_configuration_only(bare_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLQ_BROKER_URL", "redis://localhost:6379/0")
    monkeypatch.setenv("MLQ_RESULT_BACKEND", "redis://localhost:6379/1")
    monkeypatch.setenv("MLQ_DATABASE_URL", "postgresql://u:secret@db/mlq")
    settings = Settings.from_env()
    assert not settings.broker_is_embedded
    assert settings.database_url == "postgresql+psycopg://u:secret@db/mlq"
    assert "secret" not in str(settings.describe())


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MLQ_BROKER_URL", "http://example"),
        ("MLQ_DATABASE_URL", "mysql://db/x"),
        ("MLQ_RESULT_BACKEND", "cache+memcached://x"),
        ("MLQ_TASK_TIME_LIMIT", "-5"),
        ("MLQ_VISIBILITY_TIMEOUT", "ten"),
    ],
)
def test_unsupported_values_are_refused(
    bare_env: None, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env()


def test_visibility_timeout_must_outlast_three_lease_renewals(
    bare_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leases are renewed while a task runs, so the timeout is bounded by the renewal
    period, not by the longest task: 45 s is fine with a 600 s time limit."""
    monkeypatch.setenv("MLQ_TASK_TIME_LIMIT", "600")
    monkeypatch.setenv("MLQ_VISIBILITY_TIMEOUT", "45")
    assert Settings.from_env().visibility_timeout_s == 45
    monkeypatch.setenv("MLQ_LEASE_SECONDS", "20")
    with pytest.raises(ConfigurationError, match="three times MLQ_LEASE_SECONDS"):
        Settings.from_env()


def test_the_soft_time_limit_must_be_below_the_hard_one(
    bare_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLQ_TASK_TIME_LIMIT", "60")
    monkeypatch.setenv("MLQ_SOFT_TIME_LIMIT", "60")
    with pytest.raises(ConfigurationError, match="MLQ_SOFT_TIME_LIMIT"):
        Settings.from_env()


def test_passwords_are_redacted() -> None:
    assert redact_url("redis://:pw@host:6379/0") == "redis://:***@host:6379/0"
    assert redact_url("postgresql://me:pw@h/db") == "postgresql://me:***@h/db"
    assert redact_url("sqlite:////tmp/x.sqlite") == "sqlite:////tmp/x.sqlite"


def test_database_urls_use_psycopg_3() -> None:
    assert normalise_database_url("postgres://h/db") == "postgresql+psycopg://h/db"
    assert normalise_database_url("postgresql+psycopg2://h/db") == "postgresql+psycopg://h/db"


def test_the_size_limits_have_defaults_and_are_shown(
    bare_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLQ_MAX_RECORD_BYTES", raising=False)
    monkeypatch.delenv("MLQ_MAX_BATCH_RECORDS", raising=False)
    settings = Settings.from_env()
    assert (settings.max_record_bytes, settings.max_batch_records) == (65536, 10_000_000)
    shown = settings.describe()
    assert shown["max record size (bytes of JSON)"] == "65536"
    assert shown["max records in a batch"] == "10000000"


def test_the_size_limits_are_read_from_the_environment(
    bare_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLQ_MAX_RECORD_BYTES", "1000")
    monkeypatch.setenv("MLQ_MAX_BATCH_RECORDS", "5")
    settings = Settings.from_env()
    assert (settings.max_record_bytes, settings.max_batch_records) == (1000, 5)


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("MLQ_MAX_RECORD_BYTES", "64k", "must be a whole number"),
        ("MLQ_MAX_RECORD_BYTES", "0", "must be positive"),
        ("MLQ_MAX_BATCH_RECORDS", "1e6", "must be a whole number"),
        ("MLQ_MAX_BATCH_RECORDS", "-1", "must be positive"),
        ("MLQ_MAX_BATCH_RECORDS", str(2**31), "must be at most 2147483647"),
    ],
)
def test_bad_size_limits_are_refused_naming_the_variable(
    bare_env: None, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable) as caught:
        Settings.from_env()
    assert reason in str(caught.value)
