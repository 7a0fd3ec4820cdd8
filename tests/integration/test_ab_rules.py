"""A/B tests' rules, each by a planted outcome on the real stack: a challenger that fails
(split and shadow: the guardrail ends the test early, the control kept), feedback
missing on one arm (blocked), two versions of one model (an A/A test that must not
promote), a shadow test with a planted winner, regressors compared by mean absolute
error, and a replay of past requests that promotes nothing."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select

from examples.user_models import diabetes, iris
from producer import Client
from shared.ab.evaluation import evaluate_running
from shared.db.engine import session_scope
from shared.db.models import ABReplayRequest, ABShadowAnswer, MLRequest
from tests.conftest import PLANTED, TEST_HOME
from tests.integration.ab_flows import (
    RANDOM_FOREST,
    arms_of,
    beat,
    plant_control,
    register_version,
    send_batch_with_feedback,
    send_with_feedback,
    statuses,
    wait_until_ended,
)
from tests.integration.conftest import run_mlq
from workers.registration import register_model

pytestmark = pytest.mark.integration

IRIS_TARGET = "species"


def iris_versions() -> pd.DataFrame:
    """forest@1 in production and forest@2, the same model refusing records with a petal
    longer than 4 cm (about half of them): a challenger that fails often. Returns the
    records with their true species."""
    model, features, target = iris()
    register_model(
        model, endpoint="iris", name="forest", version="1", sample=features, status="production"
    )
    short = "petal length (cm)"
    register_model(
        model,
        endpoint="iris",
        name="forest",
        version="2",
        sample=features[features[short] <= 4.0],
        status="staging",
        bounds={short: (None, 4.0)},
    )
    named = target.map(dict(enumerate(["setosa", "versicolor", "virginica"])))
    return features.assign(**{IRIS_TARGET: named}).sample(frac=1, random_state=0)


def test_a_failing_challenger_in_a_split_is_stopped_early_by_beat(client: Client) -> None:
    rows = iris_versions()
    test = client.start_ab_test(
        endpoint="iris", b="forest@2", duration=timedelta(hours=1), min_labelled=10
    )
    send_batch_with_feedback(client, rows.head(120), endpoint="iris", target=IRIS_TARGET)
    with beat(TEST_HOME / "beat-guardrail.log"):
        report = wait_until_ended(client, test["id"])
    summary = report["summary"]
    assert report["ended_by"] == "beat" and report["ended_at"] < report["ends_at"]  # early
    assert (summary["winner"], summary["promote"]) == ("A", False)
    assert summary["reason"].startswith("guardrail error rate breached: B ")
    assert summary["reason"].endswith("control kept")
    assert summary["evidence"]["guardrails"]["error_rate"]["breached"] is True
    after = statuses("iris")
    assert (after["forest@1"], after["forest@2"]) == ("production", "staging")  # as before


def test_a_failing_shadow_challenger_never_fails_the_control_and_is_stopped(
    client: Client,
) -> None:
    rows = iris_versions()
    test = client.start_ab_test(
        endpoint="iris", b="forest@2", mode="shadow", duration=timedelta(hours=1)
    )
    results = send_batch_with_feedback(
        client, rows.head(60), endpoint="iris", target=IRIS_TARGET
    ) + send_with_feedback(client, rows.iloc[60:70], endpoint="iris", target=IRIS_TARGET)
    # Everyone was served by the control, and served well.
    assert {(r["status"], r["algorithm"]["version"]) for r in results} == {("OK", "1")}
    with session_scope() as session:
        shadow = dict(
            session.execute(
                select(ABShadowAnswer.status, func.count())
                .where(ABShadowAnswer.ab_test_id == test["id"])
                .group_by(ABShadowAnswer.status)
            ).all()
        )
    assert shadow["OK"] + shadow["ERROR"] == 70 and shadow["ERROR"] > 20
    [outcome] = evaluate_running(ended_by="beat")
    assert outcome["ended_now"] is True
    summary = client.ab_report(test["id"])["summary"]
    assert summary["winner"] == "A" and "B alone failed on" in summary["reason"]
    assert summary["evidence"]["paired"]["only_b_errors"] == shadow["ERROR"]


def test_feedback_missing_more_on_one_arm_blocks_promotion(
    client: Client, held_out: pd.DataFrame
) -> None:
    """B is far better, but only a quarter of its requests got labels against all of
    A's: the labelled ones may not be like the rest, so B is not promoted."""
    plant_control()
    test = client.start_ab_test(
        endpoint="income_classifier",
        b=RANDOM_FOREST,
        duration=timedelta(hours=1),
        min_labelled=20,
        min_coverage=0.2,
    )
    quarter = iter(range(10_000))
    send_batch_with_feedback(
        client,
        held_out.head(300),
        labelled=lambda r: r["algorithm"]["name"] == PLANTED or next(quarter) % 4 == 0,
    )
    [look] = evaluate_running()  # beat waits: this may not be decided on these labels
    assert look["ended_now"] is False and "feedback missing more on one arm" in look["reason"]
    ended = client.stop_ab_test(test["id"])
    summary = ended["summary"]
    assert summary["evidence"]["effect"]["significant"] is True  # B would win on its labels...
    assert summary["winner"] is None and not summary["promote"]  # ...but is not promoted
    assert "feedback missing more on one arm" in summary["reason"]
    assert not summary["evidence"]["checks"]["uneven_feedback"]["passed"]
    assert statuses()[PLANTED] == "production" and statuses()[RANDOM_FOREST] == "testing"


def test_two_versions_of_one_model_an_a_a_test_that_must_not_promote(
    client: Client, held_out: pd.DataFrame, builtin_bundles: list[tuple[str, Any]]
) -> None:
    register_version(builtin_bundles, RANDOM_FOREST, "0.0.2", "staging")
    vague = run_mlq("ab", "start", "--b", RANDOM_FOREST, "--duration", "1h")
    assert vague.returncode == 1 and "write NAME@VERSION" in vague.stderr
    started = run_mlq(
        *("ab", "start", "--a", "random forest@0.0.1", "--b", "random forest@0.0.2"),
        *("--duration", "1h", "--min-labelled", "50", "--json"),
    )
    assert started.returncode == 0, started.stderr
    test = json.loads(started.stdout)
    assert (test["a"], test["b"]) == ("random forest@0.0.1", "random forest@0.0.2")
    # A fixed batch id: the same arms every run, so the outcome cannot flake.
    submission = client.submit_batch(
        held_out.head(400).drop(columns=["income"]), batch_id="a-a", chunk_size=50
    )
    while client.batch_status(submission.batch_id)["state"] != "done":
        time.sleep(0.1)
    client.feedback_many(zip(submission.request_ids, held_out.head(400)["income"], strict=True))
    for _ in range(5):  # beat looks again and again: nothing conclusive
        assert [o["ended_now"] for o in evaluate_running()] == [False]
    summary = client.stop_ab_test(test["id"])["summary"]
    assert summary["winner"] is None and not summary["promote"]
    assert "no significant difference" in summary["reason"]
    assert min(a["labelled"] for a in arms_of(summary).values()) >= 150
    assert statuses()["random forest@0.0.2"] == "staging"


def test_a_shadow_test_with_a_planted_winner_promotes_it(
    client: Client, held_out: pd.DataFrame
) -> None:
    plant_control()
    test = client.start_ab_test(
        endpoint="income_classifier",
        b=RANDOM_FOREST,
        mode="shadow",
        duration=timedelta(hours=1),
        min_labelled=50,
    )
    results = send_batch_with_feedback(client, held_out.head(150)) + send_with_feedback(
        client, held_out.iloc[150:170]
    )
    assert {r["algorithm"]["name"] for r in results} == {PLANTED}  # A serves everyone
    with session_scope() as session:
        arms = dict(
            session.execute(
                select(MLRequest.ab_arm, func.count())
                .where(MLRequest.ab_test_id == test["id"])
                .group_by(MLRequest.ab_arm)
            ).all()
        )
        shadowed = session.execute(
            select(func.count()).where(ABShadowAnswer.ab_test_id == test["id"])
        ).scalar_one()
    assert arms == {"A": 170} and shadowed == 170
    [outcome] = evaluate_running(ended_by="beat")
    assert outcome["ended_now"] is True  # conclusive long before the end time
    report = client.ab_report(test["id"])
    summary = report["summary"]
    assert (summary["winner"], summary["promote"]) == ("B", True), summary
    paired = summary["evidence"]["paired"]
    assert paired["compared"] == 170 and paired["only_b_correct"] > 5 * paired["only_a_correct"]
    assert summary["evidence"]["effect"]["fixed_horizon_p_value"] < 0.001  # McNemar's exact
    assert statuses()[RANDOM_FOREST] == "production" and statuses()[PLANTED] == "staging"
    shown = run_mlq("ab", "show", str(test["id"]))
    assert shown.returncode == 0 and "pairs" in shown.stdout and "shadow" in shown.stdout


def test_regressors_are_compared_by_mean_absolute_error(client: Client) -> None:
    from sklearn.ensemble import GradientBoostingRegressor

    _, features, target = diabetes()
    for version, trees, status in (("1", 2, "production"), ("2", 100, "staging")):
        model = GradientBoostingRegressor(n_estimators=trees, random_state=0)
        register_model(
            model.fit(features, target),
            endpoint="diabetes",
            name="boosting",
            version=version,
            sample=features.head(200),
            status=status,
        )
    test = client.start_ab_test(
        endpoint="diabetes", b="boosting@2", duration=timedelta(hours=1), min_labelled=50
    )
    rows = features.assign(progression=target.astype(float))
    send_batch_with_feedback(client, rows, endpoint="diabetes", target="progression")
    summary = client.stop_ab_test(test["id"])["summary"]
    evidence = summary["evidence"]
    assert evidence["metric"] == "mean_absolute_error"
    mae = {arm: figures["mean_absolute_error"] for arm, figures in arms_of(summary).items()}
    assert mae["B"] < 0.7 * mae["A"]
    assert evidence["effect"]["estimate"] == pytest.approx(mae["B"] - mae["A"])
    assert (summary["winner"], summary["promote"]) == ("B", True)
    assert summary["text"].startswith("Model #1 mean absolute error: ")
    assert statuses("diabetes")["boosting@2"] == "production"


def test_a_replay_compares_a_challenger_on_past_requests_and_promotes_nothing(
    client: Client, held_out: pd.DataFrame
) -> None:
    plant_control()
    send_batch_with_feedback(client, held_out.head(200))  # the past: answered by A
    replayed = run_mlq(
        *("ab", "replay", "--b", RANDOM_FOREST, "--since", "1h", "--min-labelled", "50"),
        "--json",
    )
    assert replayed.returncode == 0, replayed.stderr
    report = json.loads(replayed.stdout)
    assert (report["mode"], report["state"], report["ended_by"]) == (
        "replay",
        "ended",
        "mlq ab replay",
    )
    summary = report["summary"]
    assert summary["winner"] == "B" and summary["promote"] is False
    assert summary["reason"].endswith("a replay promotes nothing")
    assert summary["evidence"]["paired"]["compared"] == 200
    # Nothing reached the challenger but the replay's own batch, and no status changed.
    challenger = summary["evidence"]["arms"]["B"]
    assert challenger["requests"] == 200
    with session_scope() as session:
        mapped = session.execute(
            select(func.count()).where(ABReplayRequest.ab_test_id == report["id"])
        ).scalar_one()
        served = session.execute(
            select(MLRequest.batch_id, func.count())
            .where(MLRequest.response["algorithm"]["name"].as_string() == RANDOM_FOREST)
            .group_by(MLRequest.batch_id)
        ).all()
    assert mapped == 200 and served == [(report["batch_id"], 200)]
    assert statuses()[RANDOM_FOREST] == "testing" and statuses()[PLANTED] == "production"
