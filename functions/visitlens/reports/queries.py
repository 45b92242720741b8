"""Report queries, in each site's local time: series, heatmap, demographics, dwell, visit list.

Counts come from ``visit_stats_hourly`` (one row per site and local hour); distinct visitors are
counted exactly from ``visits`` (a covering index), because distinct counts do not add up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from visitlens.ports import Connection
from visitlens.reports.stats import ALL_SITES, DWELL_BUCKETS_MIN

Granularity = Literal["hour", "day", "week", "month"]


@dataclass(frozen=True, slots=True)
class Range:
    """Local dates ``start`` to ``end`` inclusive, for ``sites`` (None: every site)."""

    start: date
    end: date
    sites: Sequence[UUID] | None

    @property
    def lo(self) -> datetime:
        return datetime.combine(self.start, datetime.min.time())

    @property
    def hi(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), datetime.min.time())

    def args(self) -> list[Any]:
        return [self.lo, self.hi, list(self.sites) if self.sites is not None else None]


_DISTINCT = "count(DISTINCT v.customer_id) + count(*) FILTER (WHERE v.customer_id IS NULL)"
_STATS_WHERE = (
    "local_hour >= $1 AND local_hour < $2 AND ($3::uuid[] IS NULL OR site_id = ANY($3::uuid[]))"
)
# Visits whose local start lies in the range; the UTC bounds (±15 h covers every time zone) let
# the index on (tenant_id, site_id, started_at) do the work.
_VISITS_WHERE = (
    "v.started_at >= ($1::timestamp AT TIME ZONE 'UTC') - interval '15 hours' "
    "AND v.started_at < ($2::timestamp AT TIME ZONE 'UTC') + interval '15 hours' "
    "AND (v.started_at AT TIME ZONE s.timezone) >= $1 "
    "AND (v.started_at AT TIME ZONE s.timezone) < $2 "
    "AND ($3::uuid[] IS NULL OR v.site_id = ANY($3::uuid[]))"
)


async def series(conn: Connection, rng: Range, granularity: Granularity) -> dict[str, Any]:
    counts = await conn.fetch(
        f"SELECT date_trunc('{granularity}', local_hour) AS bucket, sum(visits)::bigint AS visits,"
        " sum(new_visits)::bigint AS new_visits, sum(dwell_s_sum) AS dwell "
        f"FROM visit_stats_hourly WHERE {_STATS_WHERE} GROUP BY 1 ORDER BY 1",
        *rng.args(),
    )
    unique_by_bucket = await _uniques(conn, rng, granularity)
    buckets = []
    for r in counts:
        visits, new = int(r["visits"]), int(r["new_visits"])
        buckets.append(
            {
                "start": r["bucket"],
                "visits": visits,
                "new_visits": new,
                "returning_visits": visits - new,
                "unique_visitors": int(unique_by_bucket.get(r["bucket"], 0)),
                "avg_dwell_s": round(float(r["dwell"]) / visits, 1) if visits else None,
            }
        )
    visits = sum(b["visits"] for b in buckets)
    new = sum(b["new_visits"] for b in buckets)
    dwell = sum(float(r["dwell"]) for r in counts)
    totals = {
        "visits": visits,
        "new_visits": new,
        "returning_visits": visits - new,
        "unique_visitors": await _total_uniques(conn, rng, granularity, buckets),
        "avg_dwell_s": round(dwell / visits, 1) if visits else None,
    }
    return {"granularity": granularity, "buckets": buckets, "totals": totals}


async def _uniques(conn: Connection, rng: Range, granularity: Granularity) -> dict[datetime, int]:
    """Distinct visitors per bucket: precomputed for one site or all sites; counted otherwise."""
    if rng.sites is None or len(rng.sites) == 1:
        site = ALL_SITES if rng.sites is None else rng.sites[0]
        rows = await conn.fetch(
            "SELECT period, unique_visitors FROM visit_uniques WHERE site_id = $1 "
            "AND granularity = $2 AND period >= date_trunc($2, $3::timestamp) AND period < $4",
            site, granularity, rng.lo, rng.hi,
        )  # fmt: skip
        return {r["period"]: r["unique_visitors"] for r in rows}
    rows = await conn.fetch(
        f"SELECT date_trunc('{granularity}', v.started_at AT TIME ZONE s.timezone) AS bucket, "
        f"{_DISTINCT} AS n FROM visits v JOIN sites s ON s.id = v.site_id WHERE {_VISITS_WHERE} "
        "GROUP BY 1",
        *rng.args(),
    )
    return {r["bucket"]: r["n"] for r in rows}


# Distinct visitors over a whole range are counted from the visits (exact) for up to a quarter:
# a month or a quarter is what a manager compares, and a count over ~90 days of a chain's visits
# is one index range scan. Beyond that the buckets carry the counts (they do not add up).
EXACT_DISTINCT_DAYS = 93


async def _total_uniques(
    conn: Connection, rng: Range, granularity: Granularity, buckets: list[dict[str, Any]]
) -> int | None:
    """Distinct visitors over the whole range: one bucket's count when the range is one period,
    counted from the visits for up to a quarter; None beyond (distinct counts do not add up)."""
    if len(buckets) == 1 and granularity != "hour":
        start = buckets[0]["start"]
        whole = {"day": 1, "week": 7}.get(granularity)
        if whole and rng.lo == start and (rng.hi - rng.lo).days == whole:
            return int(buckets[0]["unique_visitors"])
    if (rng.hi - rng.lo).days <= EXACT_DISTINCT_DAYS:
        value = await conn.fetchval(
            f"SELECT {_DISTINCT} FROM visits v JOIN sites s ON s.id = v.site_id "
            f"WHERE {_VISITS_WHERE}",
            *rng.args(),
        )
        return int(value or 0)
    return None


async def heatmap(conn: Connection, rng: Range) -> dict[str, Any]:
    rows = await conn.fetch(
        "SELECT extract(isodow FROM local_hour)::int AS dow, extract(hour FROM local_hour)::int "
        f"AS hour, sum(visits)::bigint AS visits FROM visit_stats_hourly WHERE {_STATS_WHERE} "
        "GROUP BY 1, 2",
        *rng.args(),
    )
    cells = [[0] * 24 for _ in range(7)]
    for r in rows:
        cells[r["dow"] - 1][r["hour"]] = int(r["visits"])
    return {"days": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], "visits": cells}


async def demographics(conn: Connection, rng: Range) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT coalesce(sum(visits), 0)::bigint AS visits, coalesce(sum(female), 0)::bigint AS "
        f"female, coalesce(sum(male), 0)::bigint AS male FROM visit_stats_hourly WHERE {_STATS_WHERE}",
        *rng.args(),
    )
    bands = await conn.fetch(
        "SELECT b.key AS band, sum(b.value::int)::bigint AS visits FROM visit_stats_hourly, "
        f"jsonb_each_text(age_bands) b WHERE {_STATS_WHERE} GROUP BY 1 ORDER BY 1",
        *rng.args(),
    )
    assert row is not None
    visits, female, male = int(row["visits"]), int(row["female"]), int(row["male"])
    return {
        "visits": visits,
        "gender": {"female": female, "male": male, "unknown": visits - female - male},
        "age_bands": {r["band"]: int(r["visits"]) for r in bands},
    }


async def dwell(conn: Connection, rng: Range) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT coalesce(sum(visits), 0)::bigint AS visits, coalesce(sum(dwell_s_sum), 0) AS dwell, "
        + ", ".join(
            f"coalesce(sum(dwell_hist[{i + 1}]), 0)::bigint AS b{i}"
            for i in range(len(DWELL_BUCKETS_MIN) + 1)
        )
        + f" FROM visit_stats_hourly WHERE {_STATS_WHERE}",
        *rng.args(),
    )
    assert row is not None
    edges = (0, *DWELL_BUCKETS_MIN)
    labels = [f"{a}-{b} min" for a, b in zip(edges, DWELL_BUCKETS_MIN, strict=False)]
    labels.append(f">= {DWELL_BUCKETS_MIN[-1]} min")
    visits = int(row["visits"])
    return {
        "visits": visits,
        "avg_dwell_s": round(float(row["dwell"]) / visits, 1) if visits else None,
        "buckets": [
            {"label": label, "visits": int(row[f"b{i}"])} for i, label in enumerate(labels)
        ],
    }


async def visit_page(
    conn: Connection,
    rng: Range,
    *,
    is_new: bool | None,
    min_dwell_s: float | None,
    limit: int,
    after: tuple[datetime, UUID] | None,
) -> list[Any]:
    """Newest first; ``after`` = (started_at, id) of the last row of the previous page."""
    args = [*rng.args(), is_new, min_dwell_s, limit + 1]
    keyset = ""
    if after is not None:
        args += [after[0], after[1]]
        keyset = "AND (v.started_at, v.id) < ($7, $8) "
    return list(
        await conn.fetch(
            "SELECT v.id, v.site_id, v.customer_id, v.started_at, v.ended_at, v.is_new, "
            "v.sighting_count, extract(epoch FROM v.ended_at - v.started_at) AS dwell_s, "
            "(v.started_at AT TIME ZONE s.timezone) AS local_start "
            f"FROM visits v JOIN sites s ON s.id = v.site_id WHERE {_VISITS_WHERE} "
            "AND ($4::boolean IS NULL OR v.is_new = $4) "
            "AND ($5::double precision IS NULL OR "
            "extract(epoch FROM v.ended_at - v.started_at) >= $5) "
            f"{keyset}ORDER BY v.started_at DESC, v.id DESC LIMIT $6",
            *args,
        )
    )
