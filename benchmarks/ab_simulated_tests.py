"""Simulated A/B tests for the benchmark: the counts beat would see at every look of
thousands of tests at once, and where each decision rule ends them.

The sequential p-values are computed by the functions ``shared.ab.decide`` uses, over
arrays; ``replay_through_decide`` and ``check_fixed_horizon`` show on samples that the
array computation and the library calls agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erfc
from scipy.stats import binom

from shared.ab import ArmCounts, DecisionSettings, PairedCounts, decide
from shared.ab.sequential import beta_binomial_p_value, normal_mixture_p_value
from shared.ab.statistics import (
    accuracy_difference_variance,
    mcnemar_p_value,
    pooled_z_test_p_value,
)


@dataclass(frozen=True)
class Design:
    """``looks`` evaluations ``per_look`` labels apart (per arm in a split test, records
    in a shadow test); the fixed-horizon test looks once, at ``planned``."""

    looks: int
    per_look: int
    planned: int

    @property
    def labels(self) -> np.ndarray:
        return self.per_look * np.arange(1, self.looks + 1)

    @property
    def planned_look(self) -> int:
        return int(np.searchsorted(self.labels, self.planned))


def design_for(labels: int, looks: int) -> Design:
    """Looks up to twice the fixed horizon, the fixed test's one look among them."""
    per_look = math.ceil(labels / (looks // 2))
    return Design(looks, per_look, per_look * (looks // 2))


@dataclass(frozen=True)
class Outcome:
    """Per simulated test: the look (index) it ended at, and +1 for B, -1 for A, 0 for
    no winner (ended at its end time without a conclusion)."""

    look: np.ndarray
    winner: np.ndarray


@dataclass(frozen=True)
class Simulated:
    """One scenario's cumulative counts at every look, (tests, looks) each."""

    mode: str
    design: Design
    a: np.ndarray  # split: A's correct; shadow: records only A got right
    b: np.ndarray  # split: B's correct; shadow: records only B got right

    def direction(self) -> np.ndarray:
        return np.sign(self.b - self.a)


def simulate_split(
    rng: np.random.Generator, tests: int, design: Design, acc_a: float, acc_b: float
) -> Simulated:
    shape = (tests, design.looks)
    correct_a = rng.binomial(design.per_look, acc_a, shape).cumsum(axis=1)
    correct_b = rng.binomial(design.per_look, acc_b, shape).cumsum(axis=1)
    return Simulated("split", design, correct_a, correct_b)


def simulate_shadow(
    rng: np.random.Generator,
    tests: int,
    design: Design,
    acc_a: float,
    acc_b: float,
    discordant: float,
) -> Simulated:
    only_b = (discordant + acc_b - acc_a) / 2
    if not 0 <= only_b <= discordant:
        raise SystemExit(
            f"a {acc_b - acc_a:+.3f} difference needs more than {discordant:.3f} discordant"
        )
    new = rng.binomial(design.per_look, discordant, (tests, design.looks))
    wins_b = rng.binomial(new, only_b / discordant)
    return Simulated("shadow", design, (new - wins_b).cumsum(axis=1), wins_b.cumsum(axis=1))


def sequential_p(sim: Simulated, settings: DecisionSettings) -> np.ndarray:
    """The always-valid p-value decide() computes, at every look of every test."""
    n = sim.design.labels
    if sim.mode == "split":
        variance = accuracy_difference_variance(sim.a, n, sim.b, n)
        return normal_mixture_p_value((sim.b - sim.a) / n, variance, settings.tau)
    return beta_binomial_p_value(
        sim.b, sim.a + sim.b, null_p=0.5, concentration=settings.concentration
    )


def fixed_horizon_p(sim: Simulated) -> np.ndarray:
    """The fixed-horizon test at every look: the pooled z-test (split), McNemar's exact
    test (shadow; the same formula statsmodels' mcnemar(exact=True) uses)."""
    n = sim.design.labels
    if sim.mode == "split":
        pooled = (sim.a + sim.b) / (2 * n)
        variance = pooled * (1 - pooled) * 2 / n
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(variance > 0, (sim.b - sim.a) / n / np.sqrt(variance), 0.0)
        return erfc(np.abs(z) / math.sqrt(2))
    discordant = sim.a + sim.b
    return np.minimum(1.0, 2 * binom.cdf(np.minimum(sim.a, sim.b), discordant, 0.5))


def first_decisions(
    sim: Simulated, p: np.ndarray, settings: DecisionSettings, *, looks: slice = slice(None)
) -> Outcome:
    """Where each test ends if it ends at the first look with p <= alpha (and the
    minimum sample), else at the last look without a winner."""
    allowed = sim.design.labels >= settings.min_labelled
    hit = (p <= settings.alpha) & allowed
    hit[:, ~_mask(sim.design.looks, looks)] = False
    ended = hit.any(axis=1)
    last = np.arange(sim.design.looks)[looks][-1]
    look = np.where(ended, hit.argmax(axis=1), last)
    winner = np.where(ended, sim.direction()[np.arange(len(look)), look], 0)
    return Outcome(look, winner)


def _mask(size: int, looks: slice) -> np.ndarray:
    mask = np.zeros(size, bool)
    mask[looks] = True
    return mask


def replay_through_decide(
    sim: Simulated, outcome: Outcome, settings: DecisionSettings, tests: int
) -> int:
    """Evaluate the first ``tests`` simulated tests with decide() at every look; the
    number that end where the array computation says they do."""
    agreed = 0
    for test in range(tests):
        for look, n in enumerate(sim.design.labels.tolist()):
            only_a, only_b = int(sim.a[test, look]), int(sim.b[test, look])
            final = look == sim.design.looks - 1
            if sim.mode == "split":
                decision = decide(
                    ArmCounts(n, 0, n, only_a),
                    ArmCounts(n, 0, n, only_b),
                    final=final,
                    settings=settings,
                )
            else:
                same = n - only_a - only_b
                pairs = PairedCounts(same, only_a, only_b, 0, compared=n, agreed=same)
                arm = ArmCounts(n, 0, n, 0)
                decision = decide(arm, arm, final=final, settings=settings, pairs=pairs)
            if decision.stop:
                winner = {"B": 1, "A": -1, None: 0}[decision.winner]
                agreed += (look, winner) == (outcome.look[test], outcome.winner[test])
                break
    return agreed


def labels_at_end(sim: Simulated, outcome: Outcome) -> np.ndarray:
    """Total labels at each test's end (both arms in a split test)."""
    per_arm = sim.design.labels[outcome.look]
    return per_arm * (2 if sim.mode == "split" else 1)


def percentile_to_conclude(sim: Simulated, outcome: Outcome, q: float) -> float:
    labels = np.where(outcome.winner == 1, labels_at_end(sim, outcome), np.inf)
    return float(np.percentile(labels, q, method="inverted_cdf"))  # no interpolation with inf


def check_fixed_horizon(sim: Simulated, p: np.ndarray, samples: int, seed: int = 0) -> int:
    """At ``samples`` random (test, look) cells, whether the array's fixed-horizon p
    equals the library's (statsmodels' proportions_ztest or mcnemar); how many do."""
    rng = np.random.default_rng(seed)
    tests, looks = rng.integers(0, p.shape[0], samples), rng.integers(0, p.shape[1], samples)
    equal = 0
    for test, look in zip(tests.tolist(), looks.tolist(), strict=True):
        n = int(sim.design.labels[look])
        only_a, only_b = int(sim.a[test, look]), int(sim.b[test, look])
        if sim.mode == "split":
            library = pooled_z_test_p_value(ArmCounts(n, 0, n, only_a), ArmCounts(n, 0, n, only_b))
        else:
            library = mcnemar_p_value(PairedCounts(n - only_a - only_b, only_a, only_b, 0))
        equal += math.isclose(p[test, look], library or 1.0, rel_tol=1e-6, abs_tol=1e-12)
    return equal
