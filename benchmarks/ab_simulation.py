"""A/B statistics simulation: how often each rule promotes a challenger that is no better,
how many labels it needs to find a real difference, split against shadow, sequential
against fixed horizon. Pure numpy: no services, about a minute on 2 cores.

Every simulated test is evaluated at every look, as beat evaluates a running test, with
the decision's minimum of labelled requests. The sequential figures come from the same
functions ``shared.ab.decide`` uses, run over arrays; a sample of the simulated tests is
also replayed through ``decide`` itself, look by look, and must stop at the same look
with the same winner (the run fails otherwise).

A shadow test's records differ in correctness only where the two models disagree
(binary labels), so its discordant share is 1 - agreement. The default agreement,
0.951, is the income models' (random forest and extra trees of 100 trees on the UCI
Adult data, the tutorial's 70/30 split with random_state=1234): they agree on 9,291 of
the 9,769 held-out records. ``--measure-agreement`` trains both and measures it again.

Usage::

    .venv/bin/python -m benchmarks.ab_simulation
    .venv/bin/python -m benchmarks.ab_simulation --measure-agreement
    .venv/bin/python -m benchmarks.ab_simulation --tune   # the tau and concentration sweeps
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from benchmarks.ab_sample_size import mcnemar_labels_for_power, split_labels_for_power
from benchmarks.ab_simulated_tests import (
    Design,
    Outcome,
    Simulated,
    check_fixed_horizon,
    design_for,
    first_decisions,
    fixed_horizon_p,
    labels_at_end,
    percentile_to_conclude,
    replay_through_decide,
    sequential_p,
    simulate_shadow,
    simulate_split,
)
from benchmarks.harness import print_table
from shared.ab import DecisionSettings

MEASURED_AGREEMENT = 0.951
POWER = 0.8
REPLAYED = 40  # tests per scenario replayed through decide() (3 ms per evaluation)
CHECKED = 200  # (test, look) cells whose fixed-horizon p is checked against the library
SEQUENTIAL = "sequential, every look"
PEEKED = "fixed horizon, peeked at every look"
ONCE = "fixed horizon, once at its planned end"
FIXED_TEST = {"split": "pooled z-test", "shadow": "McNemar exact"}


@dataclass
class Run:
    """One run's settings and designs, and the rows of its tables."""

    args: argparse.Namespace
    rng: np.random.Generator
    discordant: float
    needed: dict[str, int]  # labels per arm (split) or records (shadow) for the power
    designs: dict[str, Design]
    a_a: list[list[object]]
    power: list[list[object]]
    decisions: list[list[object]]
    checks: list[list[object]]

    def settings(self, mode: str) -> DecisionSettings:
        return DecisionSettings(mode=mode, alpha=self.args.alpha)

    def simulate(self, mode: str, difference: float) -> Simulated:
        args, design = self.args, self.designs[mode]
        accuracy_b = args.accuracy + difference
        if mode == "split":
            return simulate_split(self.rng, args.tests, design, args.accuracy, accuracy_b)
        return simulate_shadow(
            self.rng, args.tests, design, args.accuracy, accuracy_b, self.discordant
        )

    def outcomes(self, sim: Simulated, scenario: str) -> dict[str, Outcome]:
        """Where each rule ends every simulated test; checked against the library."""
        settings = self.settings(sim.mode)
        fixed = fixed_horizon_p(sim)
        planned = sim.design.planned_look
        results = {
            SEQUENTIAL: first_decisions(sim, sequential_p(sim, settings), settings),
            PEEKED: first_decisions(sim, fixed, settings),
            ONCE: first_decisions(sim, fixed, settings, looks=slice(planned, planned + 1)),
        }
        replayed = replay_through_decide(sim, results[SEQUENTIAL], settings, REPLAYED)
        self.checks.append([sim.mode, scenario, "decide() at every look", REPLAYED, replayed])
        checked = check_fixed_horizon(sim, fixed, CHECKED)
        self.checks.append([sim.mode, scenario, f"{FIXED_TEST[sim.mode]} p", CHECKED, checked])
        return results


def rate(outcomes: np.ndarray) -> str:
    low, high = proportion_confint(int(outcomes.sum()), outcomes.size, method="wilson")
    return f"{outcomes.mean():.4f} [{low:.4f}, {high:.4f}]"


def a_a_tests(run: Run, mode: str) -> None:
    for name, outcome in run.outcomes(run.simulate(mode, 0.0), "A/A").items():
        promoted = outcome.winner == 1
        run.a_a.append(
            [
                mode,
                name.replace("fixed horizon", FIXED_TEST[mode]),
                rate(promoted),
                rate(outcome.winner != 0),
                f"{promoted.mean() / run.args.alpha:.2f}",
                f"{np.mean(outcome.winner != 0) / run.args.alpha:.2f}",
            ]
        )


def real_difference(run: Run, mode: str, difference: float) -> None:
    sim = run.simulate(mode, difference)
    results = run.outcomes(sim, f"B +{difference:.2f}")
    sequential, once = results[SEQUENTIAL], results[ONCE]
    scale = 2 if mode == "split" else 1  # labels in total: both arms of a split
    if difference == run.args.difference:
        run.power += [
            [
                mode,
                f"{FIXED_TEST[mode]} (fixed horizon)",
                f"{run.needed[mode] * scale:,}",
                f"{np.mean(once.winner == 1):.3f} at {sim.design.planned * scale:,}",
            ],
            [
                mode,
                "sequential (always valid)",
                f"{percentile_to_conclude(sim, sequential, 100 * POWER):,.0f}",
                f"{np.mean(sequential.winner == 1):.3f} by {sim.design.labels[-1] * scale:,}",
            ],
        ]
    fixed_median = float(np.median(labels_at_end(sim, once)))
    for name, outcome in (
        (f"{FIXED_TEST[mode]} (fixed horizon)", once),
        ("sequential", sequential),
    ):
        median = float(np.median(labels_at_end(sim, outcome)))
        run.decisions.append(
            [
                mode,
                f"+{difference:.2f}",
                name,
                f"{np.mean(outcome.winner == 1):.3f}",
                f"{median:,.0f}",
                f"{median / fixed_median:.2f}",
            ]
        )


def print_results(run: Run, agreement: float) -> None:
    args = run.args
    print_table(
        f"A/A tests: {args.tests} per row, accuracy {args.accuracy} on both arms, "
        f"{args.looks} looks, alpha {args.alpha} (95% Wilson intervals)",
        [
            "mode",
            "rule",
            "false promotions",
            "false conclusions (A or B)",
            "promotions / alpha",
            "conclusions / alpha",
        ],
        run.a_a,
    )
    looks = ", ".join(
        f"{mode} every {d.per_look} {'labels per arm' if mode == 'split' else 'records'} "
        f"up to {d.labels[-1]:,}"
        for mode, d in run.designs.items()
    )
    print(f"\nLooks: {looks} (agreement {agreement:.3f}); the fixed test looks once, at half.")
    print_table(
        f"Labels to detect {args.accuracy} vs {args.accuracy + args.difference:.2f} with "
        f"{POWER:.0%} power (labels in total: both arms of a split)",
        ["mode", "test", f"labels for {POWER:.0%} power", "simulated power"],
        run.power,
    )
    fixed_ratio = 2 * run.needed["split"] / run.needed["shadow"]
    split_seq, shadow_seq = (float(str(row[2]).replace(",", "")) for row in run.power[1::2])
    print(
        f"\nsplit / shadow labels: fixed horizon {fixed_ratio:.1f}x, "
        f"sequential {split_seq / shadow_seq:.1f}x"
    )
    print_table(
        "Labels to a decision when B is better "
        "(median; a test without a conclusion ends at its end time)",
        ["mode", "B's lead", "rule", "promoted B", "median labels", "ratio to fixed"],
        run.decisions,
    )
    print_table(
        "The array computation against the library, on samples",
        ["mode", "scenario", "check", "samples", "equal"],
        run.checks,
    )


def measure_agreement() -> float:
    """Train the income models as the tutorial does and measure how often they agree."""
    from workers.training import (
        TARGET,
        TUTORIAL_ALGORITHMS,
        categorical_columns,
        income_pipeline,
        split_adult,
    )

    split = split_adult()
    train, held_out = split.train.drop(columns=[TARGET]), split.test.drop(columns=[TARGET])
    truth = split.test[TARGET].to_numpy()
    predictions = {}
    for spec in TUTORIAL_ALGORITHMS:
        model = income_pipeline(spec.make_estimator(), categorical_columns(split.train))
        model.set_params(classify__n_jobs=2)
        model.fit(train, split.train[TARGET].to_numpy())
        predictions[spec.name] = model.predict(held_out)
    first, second = predictions.values()
    rows = [[name, f"{np.mean(p == truth):.4f}"] for name, p in predictions.items()]
    agreed = int(np.sum(first == second))
    rows.append(["agreement", f"{agreed / len(truth):.4f} ({agreed} of {len(truth)})"])
    print_table("Income models on the held-out 30%", ["", "accuracy"], rows)
    return agreed / len(truth)


def tune(rng: np.random.Generator, tests: int, accuracy: float, discordant: float) -> None:
    """The sweeps behind DEFAULT_TAU and DEFAULT_CONCENTRATION: per mixing setting and
    true difference, the share of tests that promote B by the last look, and the median
    labels to that (inf: fewer than half did)."""
    design = Design(looks=200, per_look=100, planned=100)
    rows = []
    for difference in (0.01, 0.02, 0.04, 0.08):
        sim = simulate_split(rng, tests, design, accuracy, accuracy + difference)
        for tau in (0.01, 0.015, 0.02, 0.03, 0.05, 0.1):
            tuned = DecisionSettings(tau=tau)
            outcome = first_decisions(sim, sequential_p(sim, tuned), tuned)
            rows.append(
                [
                    f"{difference:+.2f}",
                    str(tau),
                    f"{np.mean(outcome.winner == 1):.3f}",
                    f"{percentile_to_conclude(sim, outcome, 50):,.0f}",
                ]
            )
    print_table(
        f"Split, tau sweep (looks every 100 labels per arm, up to 20,000; {tests} tests)",
        ["difference", "tau", "power", "median labels in total to promote B"],
        rows,
    )
    design = Design(looks=200, per_look=50, planned=50)
    rows = []
    for difference in (0.005, 0.01, 0.02, 0.04):
        sim = simulate_shadow(rng, tests, design, accuracy, accuracy + difference, discordant)
        for concentration in (2, 5, 10, 20, 50, 100):
            tuned = DecisionSettings(concentration=concentration)
            outcome = first_decisions(sim, sequential_p(sim, tuned), tuned)
            rows.append(
                [
                    f"{difference:+.3f}",
                    concentration,
                    f"{np.mean(outcome.winner == 1):.3f}",
                    f"{percentile_to_conclude(sim, outcome, 50):,.0f}",
                ]
            )
    print_table(
        f"Shadow, concentration sweep (looks every 50 records, up to 10,000; {tests} tests)",
        ["difference", "concentration", "power", "median labels to promote B"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=2000, help="simulated tests per row")
    parser.add_argument("--looks", type=int, default=50, help="up to 2x the fixed horizon")
    parser.add_argument("--accuracy", type=float, default=0.84, help="A's accuracy")
    parser.add_argument("--difference", type=float, default=0.02, help="B's lead to detect")
    parser.add_argument("--agreement", type=float, default=MEASURED_AGREEMENT)
    parser.add_argument("--measure-agreement", action="store_true")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--tune", action="store_true", help="the tau and concentration sweeps")
    args = parser.parse_args()
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    agreement = measure_agreement() if args.measure_agreement else args.agreement
    discordant = 1 - agreement
    if args.tune:  # its own generator, so that the tables below do not depend on it
        tune(np.random.default_rng(args.seed + 1), args.tests, args.accuracy, discordant)
    needed = {
        "split": split_labels_for_power(args.difference, args.accuracy, args.alpha, POWER),
        "shadow": mcnemar_labels_for_power(args.difference, discordant, args.alpha, POWER),
    }
    designs = {mode: design_for(n, args.looks) for mode, n in needed.items()}
    run = Run(args, rng, discordant, needed, designs, [], [], [], [])
    for mode in designs:
        a_a_tests(run, mode)
        for difference in (args.difference, 2 * args.difference):
            real_difference(run, mode, difference)
    print_results(run, agreement)
    print(f"\n{time.perf_counter() - started:.0f} s")
    if any(row[3] != row[4] for row in run.checks):
        raise SystemExit("the array computation and the library disagree")


if __name__ == "__main__":
    main()
