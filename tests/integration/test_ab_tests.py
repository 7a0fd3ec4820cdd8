"""A/B tests on the real stack: the tutorial's flow ended by beat and by stop, planted
winners, empty arms, races, and feedback that comes early or twice."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select

from producer import Client
from producer.local_processes import LocalBeat
from shared.ab_tests import get_test
from shared.contracts import EXAMPLE_RECORD
from shared.db.batches import create_batch, finish_submission
from shared.db.engine import session_scope
from shared.db.models import Feedback, MLAlgorithmStatus, MLRequest
from shared.registry import list_algorithms, set_status
from tests.conftest import PLANTED, TEST_HOME
from tests.integration.conftest import run_mlq
from workers.ab_evaluation import end_test
from workers.training import ADULT_DATA, TARGET, read_adult

pytestmark = pytest.mark.integration


def statuses() -> dict[str, str]:
    with session_scope() as session:
        return {a.name: a.status for a in list_algorithms(session)}


def send_with_feedback(
    client: Client, rows: pd.DataFrame, *, labels: bool = True
) -> list[dict[str, Any]]:
    """Each row through the endpoint's default traffic, then its true label as feedback."""
    records = rows.drop(columns=[TARGET]).to_dict("records")
    ids = [client.predict(record) for record in records]
    results = [client.result(i, timeout=30) for i in ids]
    if labels:
        outcome = client.feedback_many(zip(ids, rows[TARGET], strict=True))
        assert outcome["recorded"] == len(ids) and not outcome["invalid"]
    return results


def recomputed(test_id: int) -> dict[str, tuple[int, int, float | None]]:
    """Requests, labelled and accuracy per arm, straight from the rows."""
    with session_scope() as session:
        rows = session.execute(
            select(MLRequest.ab_arm, MLRequest.label, Feedback.label)
            .outerjoin(Feedback, Feedback.request_id == MLRequest.id)
            .where(MLRequest.ab_test_id == test_id)
        ).all()
    figures = {}
    for arm in ("A", "B"):
        mine = [r for r in rows if r[0] == arm]
        labelled = [r for r in mine if r[2] is not None]
        correct = sum(r[1] == r[2] for r in labelled)
        figures[arm] = (len(mine), len(labelled), correct / len(labelled) if labelled else None)
    return figures


def assert_summary_matches_rows(summary: dict[str, Any], test_id: int) -> None:
    rows = recomputed(test_id)
    for arm in ("A", "B"):
        stats = summary["arms"][arm]
        assert (stats["requests"], stats["labelled"]) == rows[arm][:2]
        expected = rows[arm][2]
        assert stats["accuracy"] == (None if expected is None else pytest.approx(expected))


def test_the_tutorial_flow_ended_by_beat(client: Client, held_out: pd.DataFrame) -> None:
    test = client.start_ab_test(
        endpoint="income_classifier",
        a="random forest",
        b="extra trees",
        duration=timedelta(seconds=3),
    )
    assert statuses() == {
        "random forest": "production",
        "extra trees": "ab_testing",
        PLANTED: "staging",
    }
    results = send_with_feedback(client, held_out.head(100))
    arms = {r["algorithm"]["name"] for r in results}
    assert arms == {"random forest", "extra trees"}  # both arms served, production in service
    with LocalBeat(log_path=TEST_HOME / "beat.log", env={"MLQ_AB_CHECK_SECONDS": "1"}):
        deadline = time.monotonic() + 30
        while client.ab_report(test["id"])["ended_at"] is None:
            assert time.monotonic() < deadline, "beat did not end the test"
            time.sleep(0.5)
    report = client.ab_report(test["id"])
    assert report["ended_by"] == "beat"
    summary = report["summary"]
    assert_summary_matches_rows(summary, test["id"])
    assert summary["arms"]["A"]["requests"] + summary["arms"]["B"]["requests"] == 100
    # About 50 labelled per arm is below the default minimum of 200: no promotion.
    assert summary["winner"] is None and "too few labelled" in summary["reason"]
    assert summary["text"].startswith("Model #1 accuracy: ")
    assert statuses()["random forest"] == "production"
    assert statuses()["extra trees"] == "testing"


def status_changes_by(test_id: int) -> int:
    """How many status rows the end of an A/B test wrote (2 for one promotion)."""
    with session_scope() as session:
        return int(
            session.execute(
                select(func.count())
                .select_from(MLAlgorithmStatus)
                .where(MLAlgorithmStatus.created_by.like(f"ab test #{test_id}%"))
            ).scalar_one()
        )


def plant_control(client: Client) -> None:
    """Make the wrong-on-purpose model the endpoint's production algorithm."""
    with session_scope() as session:
        ids = {a.name: a.id for a in list_algorithms(session)}
        set_status(session, algorithm_id=ids["random forest"], status="testing", created_by="t")
        set_status(session, algorithm_id=ids[PLANTED], status="production", created_by="t")


def planted_test(
    client: Client,
    rows: pd.DataFrame,
    *,
    min_labelled: int = 200,
    duration: timedelta = timedelta(hours=1),
) -> dict[str, Any]:
    """An A/B test of the wrong-on-purpose control (A) against the random forest (B),
    ``rows`` sent through it with their true labels."""
    plant_control(client)
    test = client.start_ab_test(
        endpoint="income_classifier",
        a=PLANTED,
        b="random forest",
        duration=duration,
        min_labelled=min_labelled,
    )
    send_with_feedback(client, rows)
    return test


def test_a_clear_winner_on_planted_data_is_promoted(client: Client, held_out: pd.DataFrame) -> None:
    test = planted_test(client, held_out.head(200), min_labelled=50)
    ended = client.stop_ab_test(test["id"])
    assert ended["ended_now"] is True
    summary = ended["summary"]
    assert (summary["winner"], summary["promote"]) == ("B", True)
    assert summary["p_value"] < 0.001
    assert summary["arms"]["B"]["accuracy"] > 0.7 > summary["arms"]["A"]["accuracy"]
    assert_summary_matches_rows(summary, test["id"])
    assert statuses()["random forest"] == "production"
    assert statuses()[PLANTED] == "testing"


def test_the_tutorial_rule_is_an_explicit_option(client: Client, held_out: pd.DataFrame) -> None:
    done = run_mlq(
        "ab",
        "start",
        "--a",
        "random forest",
        "--b",
        "extra trees",
        "--duration",
        "1h",
        "--rule",
        "higher_accuracy",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    test_id = json.loads(done.stdout)["id"]
    send_with_feedback(client, held_out.head(60))
    stopped = run_mlq("ab", "stop", str(test_id))
    assert stopped.returncode == 0, stopped.stderr
    assert "tutorial rule" in stopped.stdout or "equal accuracy" in stopped.stdout


def test_an_arm_without_requests_and_no_feedback_at_all(client: Client) -> None:
    test = client.start_ab_test(
        endpoint="income_classifier",
        a="random forest",
        b="extra trees",
        duration=timedelta(hours=1),
    )
    ended = client.stop_ab_test(test["id"])
    assert ended["summary"]["reason"].startswith("no labelled requests on arm A and B")
    assert ended["summary"]["arms"]["B"]["accuracy"] is None
    assert statuses()["random forest"] == "production"


def test_requests_without_feedback_are_not_counted_wrong(
    client: Client, held_out: pd.DataFrame
) -> None:
    test = client.start_ab_test(
        endpoint="income_classifier",
        a="random forest",
        b="extra trees",
        duration=timedelta(hours=1),
    )
    send_with_feedback(client, held_out.head(20), labels=False)
    summary = client.stop_ab_test(test["id"])["summary"]
    assert summary["arms"]["A"]["requests"] + summary["arms"]["B"]["requests"] == 20
    assert summary["arms"]["A"]["labelled"] == summary["arms"]["B"]["labelled"] == 0


def test_concurrent_evaluations_end_a_test_once(client: Client, held_out: pd.DataFrame) -> None:
    test = planted_test(client, held_out.head(80), min_labelled=20)
    outcomes: list[dict[str, Any]] = []
    barrier = threading.Barrier(4)

    def in_process() -> None:
        barrier.wait()
        outcomes.append(end_test(test["id"], ended_by="racer"))

    def through_worker() -> None:
        barrier.wait()
        outcomes.append(client.stop_ab_test(test["id"]))

    threads = [
        threading.Thread(target=f) for f in (in_process, in_process, through_worker, through_worker)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(o["ended_now"] for o in outcomes) == [False, False, False, True]
    promotions = status_changes_by(test["id"])
    with session_scope() as session:
        assert get_test(session, test_id=test["id"]).winner_id is not None
    assert promotions == 2  # planted model to testing, random forest to production, once


def test_one_running_test_per_endpoint(client: Client) -> None:
    client.start_ab_test(
        endpoint="income_classifier",
        a="random forest",
        b="extra trees",
        duration=timedelta(hours=1),
    )
    again = run_mlq("ab", "start", "--a", "random forest", "--b", "extra trees", "--duration", "1h")
    assert again.returncode == 1 and "already running" in again.stderr


def test_feedback_early_twice_unknown_and_invalid(client: Client) -> None:
    with session_scope() as session:
        create_batch(
            session,
            batch_id="early",
            endpoint="income_classifier",
            status=None,
            version=None,
            source=None,
        )
        finish_submission(session, batch_id="early", total=3)
    early = client.feedback("early:1", "<=50K")
    assert early["early"] == ["early:1"] and early["recorded"] == 0
    unknown = client.feedback("never-issued", ">50K")
    assert unknown["unknown"] == ["never-issued"]
    request_id = client.predict(read_adult(ADULT_DATA).drop(columns=[TARGET]).iloc[0].to_dict())
    client.result(request_id, timeout=30)
    assert client.feedback(request_id, "<=50K")["recorded"] == 1
    again = client.feedback(request_id, ">50K")
    assert again["replaced"] == [{"request_id": request_id, "previous": "<=50K", "label": ">50K"}]
    invalid = client.feedback(request_id, "rich")
    assert "not one of the model's classes" in invalid["invalid"][0]["error"]
    with session_scope() as session:
        stored = session.get(Feedback, request_id)
        assert stored is not None and (stored.label, stored.times_given) == (">50K", 2)
        assert session.get(Feedback, "never-issued") is not None  # kept, not dropped


def test_early_feedback_joins_its_row_when_it_arrives(
    client: Client, held_out: pd.DataFrame
) -> None:
    test = client.start_ab_test(
        endpoint="income_classifier",
        a="random forest",
        b="extra trees",
        duration=timedelta(hours=1),
        min_labelled=1,
    )
    row = held_out.iloc[0]
    assert client.feedback("late-row", row[TARGET])["unknown"] == ["late-row"]
    client.result(client.predict(row.drop(TARGET).to_dict(), request_id="late-row"), timeout=30)
    summary = client.stop_ab_test(test["id"])["summary"]
    assert summary["arms"]["A"]["labelled"] + summary["arms"]["B"]["labelled"] == 1


def test_show_plots_accuracy_over_time(
    client: Client, held_out: pd.DataFrame, tmp_path: Path
) -> None:
    test = client.start_ab_test(
        endpoint="income_classifier",
        a="random forest",
        b="extra trees",
        duration=timedelta(hours=1),
    )
    send_with_feedback(client, held_out.head(40))
    plot = tmp_path / "ab.png"
    shown = run_mlq("ab", "show", str(test["id"]), "--plot", str(plot), "--json")
    assert shown.returncode == 0, shown.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert '"live"' in shown.stdout and '"ended_at": null' in shown.stdout
    listed = run_mlq("ab", "list")
    assert test["title"] in listed.stdout


def test_feedback_in_one_message_is_taken_in_order(client: Client) -> None:
    request_id = client.predict(EXAMPLE_RECORD)
    client.result(request_id, timeout=30)
    outcome = client.feedback_many([(request_id, "maybe"), (request_id, "<=50K")])
    assert [i["request_id"] for i in outcome["invalid"]] == [request_id]
    assert outcome["recorded"] == 1 and outcome["replaced"] == []
    assert client.feedback(request_id, "<=50K")["replaced"] == []  # the same label again


def test_unknown_test_ids_exit_4_without_bothering_a_worker(client: Client) -> None:
    for command in ("show", "stop"):
        done = run_mlq("ab", command, "999")
        assert done.returncode == 4 and "no A/B test #999" in done.stderr


def test_a_refused_start_does_not_use_up_a_test_id(client: Client) -> None:
    first = client.start_ab_test(
        endpoint="income_classifier",
        a="random forest",
        b="extra trees",
        duration=timedelta(hours=1),
    )
    assert (
        run_mlq(
            "ab", "start", "--a", "random forest", "--b", "extra trees", "--duration", "1h"
        ).returncode
        == 1
    )
    client.stop_ab_test(first["id"])
    second = client.start_ab_test(
        endpoint="income_classifier",
        a="random forest",
        b="extra trees",
        duration=timedelta(hours=1),
    )
    assert second["id"] == first["id"] + 1


def test_promotion_demotes_whatever_is_in_production_at_the_end(
    client: Client, held_out: pd.DataFrame
) -> None:
    test = client.start_ab_test(
        endpoint="income_classifier",
        a="random forest",
        b="extra trees",
        duration=timedelta(hours=1),
        min_labelled=20,
    )
    records = held_out.head(120).drop(columns=[TARGET]).to_dict("records")
    results = [client.result(client.predict(r), timeout=30) for r in records]
    flip = {"<=50K": ">50K", ">50K": "<=50K"}
    # B's answers are confirmed, A's contradicted: a certain winner.
    labels = [
        (
            r["request_id"],
            r["label"] if r["algorithm"]["name"] == "extra trees" else flip[r["label"]],
        )
        for r in results
    ]
    client.feedback_many(labels)
    plant_control(client)  # meanwhile someone put another algorithm in production
    ended = client.stop_ab_test(test["id"])
    assert ended["summary"]["promote"] is True
    assert statuses() == {
        "extra trees": "production",
        "random forest": "testing",
        PLANTED: "testing",
    }


def test_a_significant_looking_but_too_small_sample_is_not_promoted(
    client: Client, held_out: pd.DataFrame
) -> None:
    test = planted_test(client, held_out.head(60))  # default: 200 labelled per arm
    summary = client.stop_ab_test(test["id"])["summary"]
    assert summary["p_value"] < 0.001  # looks decisive...
    assert summary["winner"] is None and "too few labelled" in summary["reason"]  # ...but no
    assert statuses()[PLANTED] == "production"


def test_a_sample_ratio_mismatch_blocks_promotion(client: Client, held_out: pd.DataFrame) -> None:
    from workers.routing import assign_arm

    test = client.start_ab_test(
        endpoint="income_classifier",
        a="random forest",
        b="extra trees",
        duration=timedelta(hours=1),
        min_labelled=20,
        rule="significance",
    )
    # Assignment keys chosen so that 3 of 4 requests land in arm A of a 50/50 test.
    keys = (f"user-{i}" for i in range(10_000))
    a_keys = [k for k in keys if assign_arm(test["id"], k, 0.5) == "A"][:150]
    b_keys = [
        k for k in (f"other-{i}" for i in range(10_000)) if assign_arm(test["id"], k, 0.5) == "B"
    ][:50]
    rows = held_out.head(200)
    ids = [
        client.predict(record, assignment_key=key)
        for record, key in zip(
            rows.drop(columns=[TARGET]).to_dict("records"), a_keys + b_keys, strict=True
        )
    ]
    for request_id in ids:
        client.result(request_id, timeout=30)
    client.feedback_many(zip(ids, rows[TARGET], strict=True))
    summary = client.stop_ab_test(test["id"])["summary"]
    assert (summary["arms"]["A"]["requests"], summary["arms"]["B"]["requests"]) == (150, 50)
    assert summary["srm_p_value"] < 0.001
    assert summary["winner"] is None and "sample ratio mismatch" in summary["reason"]


def test_two_beats_and_a_racing_stop_end_a_test_once(
    client: Client, held_out: pd.DataFrame, tmp_path: Path
) -> None:
    """Two beat processes (a second one started by mistake) check every 0.2 s while
    `mlq ab stop` is sent at the moment the test expires: one end, one promotion."""
    test = planted_test(client, held_out.head(80), min_labelled=20, duration=timedelta(seconds=4))
    beats = [
        LocalBeat(
            log_path=tmp_path / f"beat{i}.log",
            env={"MLQ_AB_CHECK_SECONDS": "0.2", "MLQ_HOME": str(tmp_path / f"beat{i}")},
        )
        for i in (1, 2)
    ]
    with beats[0], beats[1]:
        while client.ab_tests()[0]["ends_at"] > pd.Timestamp.now(tz="UTC").isoformat():
            time.sleep(0.05)
        stopped = client.stop_ab_test(test["id"])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # let both beats look at the ended test again
            time.sleep(0.5)
    report = client.ab_report(test["id"])
    assert report["ended_by"] in {"beat", "mlq ab stop"}
    assert stopped["ended_now"] is (report["ended_by"] == "mlq ab stop")
    promotions = status_changes_by(test["id"])
    assert promotions == 2  # the planted control to testing, random forest to production
    assert statuses()["random forest"] == "production"
    sent = sum(b.log_path.read_text().count("Sending due task") for b in beats)
    assert sent >= 10  # both beats really were checking all along
