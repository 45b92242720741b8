"""Re-materialise ``visit_stats_hourly`` from ``visits`` for any time range, idempotently.

Each site's rows are keyed by its *local* hour (the site's IANA time zone, DST included): the rows
whose local hour falls in the range are replaced by a fresh aggregation of the visits that started
in those local hours. Running it twice gives the same rows; running it after late events, a merge,
an unmerge or an erasure brings the counts in line. Staff never have visits (they are sightings
only), so they are excluded by construction; erased people's visits stay as anonymous counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from visitlens.ports import Connection

DWELL_BUCKETS_MIN = (1, 5, 15, 30, 60)
"""Upper bounds (minutes) of the dwell histogram; a last bucket takes everything longer."""

_BOUNDS = """
WITH bounds AS (
    SELECT s.id AS site_id, s.timezone,
           date_trunc('hour', $2::timestamptz AT TIME ZONE s.timezone) AS lo,
           date_trunc('hour', $3::timestamptz AT TIME ZONE s.timezone) + interval '1 hour' AS hi
    FROM sites s
    WHERE $1::uuid[] IS NULL OR s.id = ANY($1::uuid[])
)"""

_REMOVE = (
    _BOUNDS
    + """
DELETE FROM visit_stats_hourly x USING bounds b
WHERE x.site_id = b.site_id AND x.local_hour >= b.lo AND x.local_hour < b.hi
"""
)

_REMATERIALISE = (
    _BOUNDS
    + """, base AS (
    SELECT v.tenant_id, v.site_id, v.customer_id, v.is_new,
           date_trunc('hour', v.started_at AT TIME ZONE b.timezone) AS local_hour,
           extract(epoch FROM v.ended_at - v.started_at) AS dwell_s,
           c.gender, c.age_band
    FROM visits v
    JOIN bounds b ON b.site_id = v.site_id
    LEFT JOIN customers c ON c.id = v.customer_id
    WHERE v.started_at >= $2::timestamptz - interval '3 hours'
      AND v.started_at < $3::timestamptz + interval '4 hours'
      AND (v.started_at AT TIME ZONE b.timezone) >= b.lo
      AND (v.started_at AT TIME ZONE b.timezone) < b.hi
), bands AS (
    SELECT site_id, local_hour, jsonb_object_agg(age_band, n) AS age_bands
    FROM (SELECT site_id, local_hour, age_band, count(*) AS n FROM base
          WHERE age_band IS NOT NULL GROUP BY 1, 2, 3) g
    GROUP BY 1, 2
), inserted AS (
    INSERT INTO visit_stats_hourly (tenant_id, site_id, local_hour, visits, new_visits,
        unique_visitors, dwell_s_sum, dwell_hist, female, male, age_bands, refreshed_at)
    SELECT g.tenant_id, g.site_id, g.local_hour, g.visits, g.new_visits, g.unique_visitors,
           g.dwell_s_sum, g.dwell_hist, g.female, g.male, coalesce(bands.age_bands, '{}'), now()
    FROM (
        SELECT tenant_id, site_id, local_hour,
               count(*) AS visits,
               count(*) FILTER (WHERE is_new) AS new_visits,
               count(DISTINCT customer_id) + count(*) FILTER (WHERE customer_id IS NULL)
                   AS unique_visitors,
               coalesce(sum(dwell_s), 0) AS dwell_s_sum,
               ARRAY[count(*) FILTER (WHERE dwell_s < 60),
                     count(*) FILTER (WHERE dwell_s >= 60 AND dwell_s < 300),
                     count(*) FILTER (WHERE dwell_s >= 300 AND dwell_s < 900),
                     count(*) FILTER (WHERE dwell_s >= 900 AND dwell_s < 1800),
                     count(*) FILTER (WHERE dwell_s >= 1800 AND dwell_s < 3600),
                     count(*) FILTER (WHERE dwell_s >= 3600)]::integer[] AS dwell_hist,
               count(*) FILTER (WHERE gender = 'female') AS female,
               count(*) FILTER (WHERE gender = 'male') AS male
        FROM base GROUP BY 1, 2, 3
    ) g
    LEFT JOIN bands ON bands.site_id = g.site_id AND bands.local_hour = g.local_hour
    RETURNING visits
)
SELECT (SELECT count(*) FROM inserted) AS rows,
       (SELECT coalesce(sum(visits), 0) FROM inserted) AS visits
"""
)


ALL_SITES = UUID(int=0)
"""``visit_uniques.site_id`` of the tenant-wide distinct counts."""
GRANULARITIES = ("hour", "day", "week", "month")

_DISTINCT = "count(DISTINCT v.customer_id) + count(*) FILTER (WHERE v.customer_id IS NULL)"

_SITE_UNIQUES = (
    _BOUNDS
    + f""", periods AS (
    SELECT DISTINCT b.site_id, b.timezone, g.name AS granularity, date_trunc(g.name, h) AS period
    FROM bounds b, unnest($4::text[]) AS g(name),
         generate_series(b.lo, b.hi - interval '1 hour', interval '1 hour') AS h
)
INSERT INTO visit_uniques (tenant_id, site_id, granularity, period, unique_visitors, refreshed_at)
SELECT app_current_tenant(), p.site_id, p.granularity, p.period,
       (SELECT {_DISTINCT} FROM visits v
        WHERE v.site_id = p.site_id
          AND v.started_at >= (p.period AT TIME ZONE p.timezone)
          AND v.started_at < ((p.period + ('1 ' || p.granularity)::interval)
                              AT TIME ZONE p.timezone)),
       now()
FROM periods p
ON CONFLICT (tenant_id, site_id, granularity, period)
DO UPDATE SET unique_visitors = EXCLUDED.unique_visitors, refreshed_at = now()
"""
)

# Tenant-wide: a local period counts the visits of every site whose *local* start falls in it;
# the UTC range widened by 14 h covers every time zone's local hours.
_TENANT_UNIQUES = f"""
WITH periods AS (
    SELECT DISTINCT g.name AS granularity, date_trunc(g.name, h) AS period
    FROM unnest($3::text[]) AS g(name),
         generate_series(date_trunc('hour', $1::timestamptz AT TIME ZONE 'UTC') - interval '14 hours',
                         date_trunc('hour', $2::timestamptz AT TIME ZONE 'UTC') + interval '14 hours',
                         interval '1 hour') AS h
)
INSERT INTO visit_uniques (tenant_id, site_id, granularity, period, unique_visitors, refreshed_at)
SELECT app_current_tenant(), $4::uuid, p.granularity, p.period,
       (SELECT {_DISTINCT} FROM visits v JOIN sites s ON s.id = v.site_id
        WHERE v.started_at >= (p.period AT TIME ZONE 'UTC') - interval '15 hours'
          AND v.started_at < ((p.period + ('1 ' || p.granularity)::interval) AT TIME ZONE 'UTC')
                             + interval '15 hours'
          AND (v.started_at AT TIME ZONE s.timezone) >= p.period
          AND (v.started_at AT TIME ZONE s.timezone)
              < p.period + ('1 ' || p.granularity)::interval),
       now()
FROM periods p
ON CONFLICT (tenant_id, site_id, granularity, period)
DO UPDATE SET unique_visitors = EXCLUDED.unique_visitors, refreshed_at = now()
"""


async def refresh_uniques(
    conn: Connection,
    start: datetime,
    end: datetime,
    site_ids: Sequence[UUID] | None,
    granularities: Sequence[str],
) -> int:
    """Recount the distinct visitors of every period of ``granularities`` that ``[start, end)``
    touches, per site and tenant-wide; the number of rows written."""
    if not granularities:
        return 0
    sites = list(site_ids) if site_ids is not None else None
    done = await conn.execute(_SITE_UNIQUES, sites, start, end, list(granularities))
    wide = await conn.execute(_TENANT_UNIQUES, start, end, list(granularities), ALL_SITES)
    return int(done.split()[-1]) + int(wide.split()[-1])


async def lock_tenant_stats(conn: Connection) -> None:
    """Serialise every recomputation of one tenant's statistics until the transaction ends.

    Two transactions recomputing overlapping hours from their own snapshots lost each other's
    visits (and collided on the primary key: 409s that were never retried). Under this lock each
    recomputation's statements start after the previous one committed, so they read every visit
    committed before them (READ COMMITTED takes a snapshot per statement). Re-entrant within a
    transaction."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('visitlens:stats:' || app_current_tenant(), 0))"
    )


async def mark_dirty(conn: Connection, marks: Sequence[tuple[UUID, datetime]]) -> None:
    """Record, in the caller's transaction, that the hours of these (site, instant) pairs must be
    recomputed (the outbox the aggregate function drains): one statement, the rows written in
    (site, hour) order, so two transactions marking the same hours wait for each other in the
    same order (no deadlock)."""
    if not marks:
        return
    await conn.execute(
        "INSERT INTO stats_dirty (tenant_id, site_id, hour) "
        "SELECT DISTINCT app_current_tenant(), s, date_trunc('hour', t) "
        "FROM unnest($1::uuid[], $2::timestamptz[]) AS m(s, t) ORDER BY 2, 3 "
        "ON CONFLICT DO NOTHING",
        [site for site, _ in marks],
        [instant for _, instant in marks],
    )


async def drain_dirty(conn: Connection) -> dict[str, int]:
    """Recompute every marked hour of the transaction's tenant and remove the marks, under the
    tenant's lock; a failure rolls the removal back, so the marks wait for the next drain."""
    await lock_tenant_stats(conn)
    rows = await conn.fetch("DELETE FROM stats_dirty RETURNING site_id, hour")
    totals = {"hours": len(rows), "rows": 0, "visits": 0}
    by_site: dict[UUID, list[datetime]] = {}
    for row in rows:
        by_site.setdefault(row["site_id"], []).append(row["hour"])
    for site, hours in by_site.items():
        for start, end in _runs(sorted(hours)):
            part = await rematerialise(conn, start, end, [site])
            totals["rows"] += part["rows"]
            totals["visits"] += part["visits"]
    return totals


def _runs(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive hours merged into [start, end) ranges."""
    runs: list[tuple[datetime, datetime]] = []
    for hour in hours:
        if runs and runs[-1][1] == hour:
            runs[-1] = (runs[-1][0], hour + timedelta(hours=1))
        else:
            runs.append((hour, hour + timedelta(hours=1)))
    return runs


async def freshness(conn: Connection) -> dict[str, Any]:
    """How current the tenant's statistics are: hours still to recompute, and the time of the
    newest visit change whose hour has been aggregated (all of them when nothing is pending)."""
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM stats_dirty) AS pending, "
        "(SELECT min(marked_at) FROM stats_dirty) AS oldest_pending"
    )
    assert row is not None
    if row["pending"]:
        newest = await conn.fetchval(
            "SELECT max(updated_at) FROM visits WHERE updated_at < $1", row["oldest_pending"]
        )
    else:
        newest = await conn.fetchval("SELECT max(updated_at) FROM visits")
    return {"pending_hours": row["pending"], "newest_aggregated_visit_at": newest}


async def rematerialise(
    conn: Connection,
    start: datetime,
    end: datetime,
    site_ids: Sequence[UUID] | None = None,
    granularities: Sequence[str] = GRANULARITIES,
) -> dict[str, int]:
    """Rebuild the hourly rows of ``[start, end)`` (UTC instants, widened to whole local hours)
    for the given sites (default: every site of the transaction's tenant), and the distinct
    visitor counts of every ``granularities`` period that the range touches, per site and
    tenant-wide."""
    if end <= start:
        raise ValueError("end must be after start")
    await lock_tenant_stats(conn)
    sites = list(site_ids) if site_ids is not None else None
    status = await conn.execute(_REMOVE, sites, start, end)
    row = await conn.fetchrow(_REMATERIALISE, sites, start, end)
    assert row is not None
    removed = int(status.split()[-1]) if status.startswith("DELETE") else 0
    uniques = await refresh_uniques(conn, start, end, sites, granularities)
    return {
        "rows_removed": removed,
        "rows": row["rows"],
        "visits": row["visits"],
        "unique_rows": uniques,
    }
