"""The throughput bench's headline: the highest offered rate sustained within the latency target,
never a rate the function fell behind at, and the miss said plainly when no rate meets it."""

from __future__ import annotations

from typing import Any

from visitlens_dev.bench.throughput import _at_target, _summary


def step(offered: float, answered: float, p95: float) -> dict[str, Any]:
    return {"offered_per_s": offered, "events_per_s": answered,
            "latency_per_request": {"p95_ms": p95}, "lost": 0, "doubled": 0}  # fmt: skip


def test_the_headline_is_the_highest_sustained_rate_within_the_target() -> None:
    steps = [step(50, 50.2, 40), step(100, 99.0, 90), step(150, 149, 130), step(200, 150, 900)]
    assert _at_target(steps, 100) == {
        "events_per_s": 100.0, "p95_ms": 90, "within_target": True, "target_p95_ms": 100
    }  # fmt: skip


def test_a_rate_the_function_fell_behind_at_never_counts_however_fast_its_answers() -> None:
    steps = [step(50, 49, 150), step(100, 80, 60)]  # 100 offered, 80 answered: not sustained
    assert _at_target(steps, 100) == {
        "events_per_s": 50.0, "p95_ms": 150, "within_target": False, "target_p95_ms": 100
    }  # fmt: skip
    assert _at_target([step(5, 1, 9000)], 100)["events_per_s"] == 0.0


def test_the_summary_counts_every_run_for_lost_and_doubled() -> None:
    bad = {**step(50, 50, 10), "lost": 1}
    runs = {
        "noop": {"requests_per_s": 500.0},
        "milvus_server": {"100k": {
            "open_loop": [step(50, 50, 10), bad],
            "at_target": _at_target([step(50, 50, 10)], 100),
            "single": {"events_per_s": 90.0, "lost": 0, "doubled": 2},
            "batch": {"events_per_s": 200.0, "lost": 0, "doubled": 0},
        }},
        "replay": {"drained_s": 30.0, "lost": 0, "doubled": 0},
    }  # fmt: skip
    summary = _summary(runs)
    assert summary["milvus_server_100k_events_per_s"] == 50.0
    assert summary["milvus_server_100k_capacity_events_per_s"] == 90.0
    assert summary["milvus_server_100k_batch_events_per_s"] == 200.0
    assert summary["milvus_server_1m_events_per_s"] is None  # not run: nothing invented
    assert summary["lost"] == 1 and summary["doubled"] == 2
