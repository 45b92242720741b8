"""The open-set scale benchmark's arithmetic (dev/visitlens_dev/bench/scale.py) and the template
the decision code pools views with."""

from __future__ import annotations

import numpy as np
import pytest

from visitlens.identity.decisions import template
from visitlens_dev.bench.scale import Searches, fit_tail


def test_fit_tail_recovers_an_exponential_tail() -> None:
    # P(score >= t) = 10 ** (2 - 20 t) for t >= 0.1: sampled by inverse transform
    rng = np.random.default_rng(7)
    u = rng.random(2_000_000)
    scores = (2 - np.log10(u)) / 20
    tail = fit_tail(scores.astype(np.float32))
    # the fit's spread over seeds is about ±1 decade per unit (its smallest ranks are few)
    assert tail.decades_per_unit == pytest.approx(20, rel=0.1)
    assert tail.threshold(1e-5) == pytest.approx(0.35, abs=0.01)
    assert tail.threshold(1e-4) < tail.threshold(1e-5)


def test_fnir_at_fpir_takes_the_threshold_from_the_non_mated_searches() -> None:
    searches = Searches(
        own=[True, True, True, False],
        mated=[0.9, 0.6, 0.4, 0.95],  # the last one's best person was someone else
        non_mated=[0.1 * i for i in range(10)],  # 0.0 … 0.9
    )
    fnir, threshold = searches.fnir_at_fpir(0.1)
    assert threshold == pytest.approx(0.9)  # one of ten non-mated searches reaches it
    assert fnir == pytest.approx(0.75)  # only the 0.9 genuine search is found
    assert searches.fpir_at(0.45) == pytest.approx(0.5)
    assert searches.fnir_at(0.5) == pytest.approx(0.5)


def test_template_is_the_quality_weighted_unit_mean() -> None:
    a = np.array([1.0, 0.0], np.float32)
    b = np.array([0.0, 1.0], np.float32)
    equal = template([a, b], [0.5, 0.5])
    assert np.allclose(equal, [2**-0.5, 2**-0.5])
    leaning = template([a, b], [0.9, 0.1])
    assert leaning[0] > leaning[1]
    assert np.linalg.norm(leaning) == pytest.approx(1.0)
    # a view of quality 0 still counts a little: a person whose views are all poor keeps one
    assert np.allclose(template([a], [0.0]), a)
    with pytest.raises(ValueError, match="at least one"):
        template([], [])
