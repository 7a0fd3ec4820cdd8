"""A/B tests on the real stack, split mode: the tutorial's flow ended by beat and by stop,
planted winners, empty arms, races, bounded counts, feedback that comes early or twice,
and show and stop answering with no worker at all."""

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
from shared.ab.answers import window_of
from shared.ab.counts import arm_counts
from shared.ab.evaluation import end_test, get_test
from shared.contracts import EXAMPLE_RECORD
from shared.db.batches import create_batch, finish_submission
from shared.db.engine import session_scope
from shared.db.models import Feedback, MLAlgorithmStatus, MLRequest
from tests.conftest import PLANTED, TEST_HOME
from tests.integration.ab_flows import (
    RANDOM_FOREST,
    arms_of,
    beat,
    plant_control,
    recomputed,
    send_with_feedback,
    status_rows,
    statuses,
    wait_until_ended,
)
from tests.integration.conftest import run_mlq
from workers.training import ADULT_DATA, TARGET, read_adult

pytestmark = pytest.mark.integration


def assert_summary_matches_rows(summary: dict[str, Any], test_id: int) -> None:
    rows = recomputed(test_id)
    for arm, figures in arms_of(summary).items():
        assert (figures["requests"], figures["labelled"]) == rows[arm][:2]
        expected = rows[arm][2]
        assert figures["accuracy"] == (None if expected is None else pytest.approx(expected))


def test_the_tutorial_flow_ended_by_beat(client: Client, held_out: pd.DataFrame) -> None:
    test = client.start_ab_test(
        endpoint="income_classifier",
        a=RANDOM_FOREST,
        b="extra trees",
        duration=timedelta(seconds=3),
    )
    assert (test["a"], test["b"]) == ("random forest@0.0.1", "extra trees@0.0.1")
    assert statuses() | {"extra trees": "ab_testing"} == statuses()
    results = send_with_feedback(client, held_out.head(100))
    arms = {r["algorithm"]["name"] for r in results}
    assert arms == {RANDOM_FOREST, "extra trees"}  # both arms served, production in service
    with beat(TEST_HOME / "beat.log", every=1):
        report = wait_until_ended(client, test["id"])
    assert report["ended_by"] == "beat"
    summary = report["summary"]
    assert_summary_matches_rows(summary, test["id"])
    assert sum(a["requests"] for a in arms_of(summary).values()) == 100
    # About 50 labelled per arm is below the default minimum of 200: no promotion.
    assert summary["winner"] is None and "too few labelled" in summary["reason"]
    assert summary["text"].startswith("Model #1 accuracy: ")
    assert summary["algorithms"] == {"A": "random forest@0.0.1", "B": "extra trees@0.0.1"}
    assert statuses()[RANDOM_FOREST] == "production"
    # The challenger goes back to the status it had, saying why.
    assert statuses()["extra trees"] == "testing"
    status, by, reason = (status_rows("extra trees")[-1][k] for k in ("status", "by", "reason"))
    assert (status, by) == ("testing", f"ab test #{test['id']} (beat)")
    assert reason.startswith(f"A/B test #{test['id']}: too few labelled")


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


def planted_test(
    client: Client,
    rows: pd.DataFrame,
    *,
    min_labelled: int = 200,
    duration: timedelta = timedelta(hours=1),
) -> dict[str, Any]:
    """An A/B test of the wrong-on-purpose control (A) against the random forest (B),
    ``rows`` sent through it with their true labels."""
    plant_control()
    test = client.start_ab_test(
        endpoint="income_classifier",
        a=PLANTED,
        b=RANDOM_FOREST,
        duration=duration,
        min_labelled=min_labelled,
    )
    send_with_feedback(client, rows)
    return test


def test_a_clear_winner_on_planted_data_is_promoted_with_its_evidence(
    client: Client, held_out: pd.DataFrame
) -> None:
    test = planted_test(client, held_out.head(200), min_labelled=50)
    ended = client.stop_ab_test(test["id"])
    assert ended["ended_now"] is True and ended["winner"] == "random forest@0.0.1"
    summary = ended["summary"]
    assert (summary["winner"], summary["promote"]) == ("B", True)
    evidence = summary["evidence"]
    assert evidence["effect"]["p_value"] < 0.001 and evidence["effect"]["low"] > 0.3
    assert arms_of(summary)["B"]["accuracy"] > 0.7 > arms_of(summary)["A"]["accuracy"]
    assert evidence["settings"]["min_labelled"] == 50 and evidence["rule"] == "sequential"
    assert {"min_labelled", "coverage", "uneven_feedback", "sample_ratio"} <= set(
        evidence["checks"]
    )
    assert {"error_rate", "latency"} == set(evidence["guardrails"])
    assert_summary_matches_rows(summary, test["id"])
    assert statuses()[RANDOM_FOREST] == "production"
    assert statuses()[PLANTED] == "staging"  # replaced, still served on request
    promoted = status_rows(RANDOM_FOREST)[-1]
    assert promoted["status"] == "production"
    assert promoted["reason"].startswith(f"A/B test #{test['id']}: B more accurate: +")
    shown = run_mlq("ab", "show", str(test["id"]))
    assert shown.returncode == 0, shown.stderr
    for words in ("random forest@0.0.1", "always-valid interval", "guardrails", "coverage"):
        assert words in shown.stdout


def test_the_tutorial_rule_is_an_explicit_option(client: Client, held_out: pd.DataFrame) -> None:
    done = run_mlq(
        "ab",
        "start",
        "--a",
        RANDOM_FOREST,
        "--b",
        "extra trees",
        "--duration",
        "1h",
        "--rule",
        "higher_accuracy",
        "--min-labelled",
        "10",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    test_id = json.loads(done.stdout)["id"]
    send_with_feedback(client, held_out.head(60))
    stopped = run_mlq("ab", "stop", str(test_id), "--json")
    assert stopped.returncode == 0, stopped.stderr
    reason = json.loads(stopped.stdout)["summary"]["reason"]
    assert "tutorial rule" in reason or "equal accuracy" in reason


def test_an_arm_without_requests_and_no_feedback_at_all(client: Client) -> None:
    test = client.start_ab_test(
        endpoint="income_classifier", b="extra trees", duration=timedelta(hours=1)
    )
    ended = client.stop_ab_test(test["id"])
    assert ended["summary"]["reason"].startswith("no labelled requests yet")
    assert arms_of(ended["summary"])["B"]["accuracy"] is None
    assert statuses()[RANDOM_FOREST] == "production"


def test_requests_without_feedback_are_not_counted_wrong(
    client: Client, held_out: pd.DataFrame
) -> None:
    test = client.start_ab_test(
        endpoint="income_classifier", b="extra trees", duration=timedelta(hours=1)
    )
    send_with_feedback(client, held_out.head(20), labels=False)
    arms = arms_of(client.stop_ab_test(test["id"])["summary"])
    assert arms["A"]["requests"] + arms["B"]["requests"] == 20
    assert arms["A"]["labelled"] == arms["B"]["labelled"] == 0


def test_counts_are_bounded_by_the_window_and_the_summary_is_frozen(
    client: Client, held_out: pd.DataFrame
) -> None:
    """A row routed by a stale cache after the end and feedback given after the end
    change neither the summary nor a recount of the test's window."""
    test = client.start_ab_test(
        endpoint="income_classifier", b="extra trees", duration=timedelta(hours=1)
    )
    results = send_with_feedback(client, held_out.head(30), labels=False)
    client.feedback_many([(r["request_id"], "<=50K") for r in results[:10]])
    ended = client.stop_ab_test(test["id"])
    frozen = ended["summary"]
    client.feedback_many([(r["request_id"], "<=50K") for r in results[10:]])  # late
    late = results[0]
    with session_scope() as session:  # what a worker with a stale registry would write
        session.add(
            MLRequest(
                id="stale-cache",
                endpoint="income_classifier",
                input=EXAMPLE_RECORD,
                response={},
                status="OK",
                label="<=50K",
                ab_test_id=test["id"],
                ab_arm="A",
                algorithm_id=late["algorithm"]["id"],
            )
        )
    report = client.ab_report(test["id"])
    assert report["summary"] == frozen
    with session_scope() as session:
        ended_test = get_test(session, test_id=test["id"])
        recount = arm_counts(
            session, test=ended_test, window=window_of(ended_test, ended_test.ended_at)
        )
    assert sum(c.labelled for c in recount.values()) == 10
    assert sum(c.requests for c in recount.values()) == 30
    assert [a["labelled"] for a in arms_of(frozen).values()] == [
        recount["A"].labelled,
        recount["B"].labelled,
    ]


def test_requests_younger_than_the_label_delay_are_not_yet_expected_to_have_labels(
    client: Client, held_out: pd.DataFrame
) -> None:
    test = client.start_ab_test(
        endpoint="income_classifier",
        b="extra trees",
        duration=timedelta(hours=1),
        label_delay=timedelta(minutes=10),
    )
    send_with_feedback(client, held_out.head(20))
    live = client.ab_report(test["id"])["live"]
    arms = arms_of(live["if_stopped_now"])
    assert [arms[a]["eligible"] for a in "AB"] == [0, 0]
    assert [arms[a]["labelled"] for a in "AB"] == [0, 0]
    assert live["beat_would"] == "keep running"
    assert live["if_stopped_now"]["window"]["label_delay_s"] == 600


def test_concurrent_evaluations_end_a_test_once(client: Client, held_out: pd.DataFrame) -> None:
    test = planted_test(client, held_out.head(80), min_labelled=20)
    outcomes: list[dict[str, Any]] = []
    barrier = threading.Barrier(4)

    def in_process() -> None:
        barrier.wait()
        outcomes.append(end_test(test["id"], ended_by="racer"))

    def through_the_client() -> None:
        barrier.wait()
        outcomes.append(client.stop_ab_test(test["id"]))

    threads = [
        threading.Thread(target=f)
        for f in (in_process, in_process, through_the_client, through_the_client)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(o["ended_now"] for o in outcomes) == [False, False, False, True]
    with session_scope() as session:
        assert get_test(session, test_id=test["id"]).winner_id is not None
    assert status_changes_by(test["id"]) == 2  # planted to staging, random forest up, once


def test_one_running_test_per_endpoint(client: Client) -> None:
    client.start_ab_test(endpoint="income_classifier", b="extra trees", duration=timedelta(hours=1))
    again = run_mlq("ab", "start", "--b", "extra trees", "--duration", "1h")
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


def test_an_unstorable_feedback_item_fails_alone(client: Client) -> None:
    request_id = client.predict(read_adult(ADULT_DATA).drop(columns=[TARGET]).iloc[0].to_dict())
    client.result(request_id, timeout=30)
    outcome = client.feedback_many(
        [
            ("nul\x00id", "<=50K"),
            ("half\ud800pair", "<=50K"),
            (request_id, "bad\x00label"),
            (request_id, ">50K"),
        ]
    )
    # In the order given (an id PostgreSQL cannot store comes back made storable).
    errors = [item["error"] for item in outcome["invalid"]]
    assert len(errors) == 3 and "request_id holds a NUL" in errors[0]
    assert "surrogate" in errors[1] and "label holds a NUL" in errors[2]
    assert outcome["recorded"] == 1
    with session_scope() as session:
        stored = session.get(Feedback, request_id)
        assert stored is not None and (stored.label, stored.times_given) == (">50K", 1)


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
    assert sum(arm["labelled"] for arm in arms_of(summary).values()) == 1


def test_feedback_in_one_message_is_taken_in_order(client: Client) -> None:
    request_id = client.predict(EXAMPLE_RECORD)
    client.result(request_id, timeout=30)
    outcome = client.feedback_many([(request_id, "maybe"), (request_id, "<=50K")])
    assert [i["request_id"] for i in outcome["invalid"]] == [request_id]
    assert outcome["recorded"] == 1 and outcome["replaced"] == []
    assert client.feedback(request_id, "<=50K")["replaced"] == []  # the same label again


def test_show_plots_accuracy_over_time(
    client: Client, held_out: pd.DataFrame, tmp_path: Path
) -> None:
    test = client.start_ab_test(
        endpoint="income_classifier", b="extra trees", duration=timedelta(hours=1)
    )
    send_with_feedback(client, held_out.head(40))
    plot = tmp_path / "ab.png"
    shown = run_mlq("ab", "show", str(test["id"]), "--plot", str(plot), "--json")
    assert shown.returncode == 0, shown.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(shown.stdout)
    assert report["state"] == "running" and report["ended_at"] is None
    assert report["live"]["beat_would"] == "keep running"
    points = report["timeline"]
    assert len(points) > 1 and points[-1]["A"]["requests"] + points[-1]["B"]["requests"] == 40
    listed = run_mlq("ab", "list")
    assert test["title"] in listed.stdout or "extra trees@0.0.1" in listed.stdout


def test_show_and_stop_need_no_worker(client: Client, held_out: pd.DataFrame) -> None:
    """With no broker at all (so no worker either), show and stop answer at once (they
    read and write the database), and the stop really ends the test."""
    test = client.start_ab_test(
        endpoint="income_classifier", b="extra trees", duration=timedelta(hours=1)
    )
    send_with_feedback(client, held_out.head(10))
    nobody = {
        "MLQ_BROKER_URL": "redis://127.0.0.1:1/0",
        "MLQ_RESULT_BACKEND": "redis://127.0.0.1:1/1",
    }
    for command in ("show", "stop"):
        started = time.monotonic()
        done = run_mlq("ab", command, str(test["id"]), env=nobody)
        assert done.returncode == 0, done.stderr
        # Seconds (an interpreter starting on a busy machine), not the 60 s wait for a worker.
        assert time.monotonic() - started < 30
    assert client.ab_report(test["id"])["ended_by"] == "mlq ab stop"


def test_unknown_test_ids_exit_4(client: Client) -> None:
    for command in ("show", "stop"):
        done = run_mlq("ab", command, "999")
        assert done.returncode == 4 and "no A/B test #999" in done.stderr


def test_a_refused_start_does_not_use_up_a_test_id(client: Client) -> None:
    first = client.start_ab_test(
        endpoint="income_classifier", b="extra trees", duration=timedelta(hours=1)
    )
    refused = run_mlq("ab", "start", "--b", "extra trees", "--duration", "1h")
    assert refused.returncode == 1
    client.stop_ab_test(first["id"])
    second = client.start_ab_test(
        endpoint="income_classifier", b="extra trees", duration=timedelta(hours=1)
    )
    assert second["id"] == first["id"] + 1


def test_promotion_demotes_whatever_is_in_production_at_the_end(
    client: Client, held_out: pd.DataFrame
) -> None:
    test = client.start_ab_test(
        endpoint="income_classifier",
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
    plant_control()  # meanwhile someone put another algorithm in production
    ended = client.stop_ab_test(test["id"])
    assert ended["summary"]["promote"] is True
    assert {k: v for k, v in statuses().items() if "@" not in k} == {
        "extra trees": "production",
        RANDOM_FOREST: "testing",
        PLANTED: "staging",
    }


def test_a_significant_looking_but_too_small_sample_is_not_promoted(
    client: Client, held_out: pd.DataFrame
) -> None:
    test = planted_test(client, held_out.head(60))  # default: 200 labelled per arm
    summary = client.stop_ab_test(test["id"])["summary"]
    assert summary["evidence"]["effect"]["fixed_horizon_p_value"] < 0.001  # looks decisive...
    assert summary["winner"] is None and "too few labelled" in summary["reason"]  # ...but no
    assert statuses()[PLANTED] == "production"


def test_a_sample_ratio_mismatch_blocks_promotion(client: Client, held_out: pd.DataFrame) -> None:
    from workers.routing import assign_arm

    test = client.start_ab_test(
        endpoint="income_classifier",
        b="extra trees",
        duration=timedelta(hours=1),
        min_labelled=20,
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
    arms = arms_of(summary)
    assert (arms["A"]["requests"], arms["B"]["requests"]) == (150, 50)
    assert summary["evidence"]["checks"]["sample_ratio"]["p_value"] < 0.001
    assert summary["winner"] is None and "sample ratio mismatch" in summary["reason"]


def test_two_beats_and_a_racing_stop_end_a_test_once(
    client: Client, held_out: pd.DataFrame, tmp_path: Path
) -> None:
    """Two beat processes (a second one started by mistake) check every 0.2 s while
    `mlq ab stop` is run at the moment the test expires: one end, one promotion."""
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
        time.sleep(3)  # let both beats look at the ended test again
    report = client.ab_report(test["id"])
    assert report["ended_by"] in {"beat", "mlq ab stop"}
    assert stopped["ended_now"] is (report["ended_by"] == "mlq ab stop")
    assert status_changes_by(test["id"]) == 2  # the planted control down, random forest up
    assert statuses()[RANDOM_FOREST] == "production"
    sent = sum(b.log_path.read_text().count("Sending due task") for b in beats)
    assert sent >= 10  # both beats really were checking all along
