"""Plain SQL for the catalogue tables, keyed by column names taken from our own models.

Rows are filtered by row-level security first; ``filters`` narrow them further (site scope).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from visitlens.errors import NotFound
from visitlens.pagination import PageQuery, decode_cursor, encode_cursor
from visitlens.ports import Connection, Row

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def _ident(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


_OPERATORS = {"=": "= ${}", "any": "= ANY(${})", "contained_in": "<@ ${}"}


@dataclass(frozen=True, slots=True)
class Filter:
    """``column = value``; ``op="any"``: column is one of value; ``"contained_in"``: array <@."""

    column: str
    value: Any
    op: Literal["=", "any", "contained_in"] = "="


def _where(filters: Sequence[Filter], start: int) -> tuple[str, list[Any]]:
    clauses, args = [], []
    for i, f in enumerate(filters, start=start):
        clauses.append(f"{_ident(f.column)} {_OPERATORS[f.op].format(i)}")
        args.append(f.value)
    return (" AND ".join(clauses) or "true"), args


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    label: str
    returning: str = "*"

    async def insert(self, conn: Connection, values: Mapping[str, Any]) -> Row:
        cols = [_ident(c) for c in values]
        marks = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
        sql = (
            f"INSERT INTO {_ident(self.name)} ({', '.join(cols)}) VALUES ({marks}) "
            f"RETURNING {self.returning}"
        )
        row = await conn.fetchrow(sql, *values.values())
        assert row is not None
        return row

    async def get(self, conn: Connection, row_id: UUID, filters: Sequence[Filter] = ()) -> Row:
        where, args = _where(filters, 2)
        sql = f"SELECT {self.returning} FROM {_ident(self.name)} WHERE id = $1 AND {where}"
        row = await conn.fetchrow(sql, row_id, *args)
        if row is None:
            raise NotFound(f"{self.label} {row_id} not found")
        return row

    async def update(
        self,
        conn: Connection,
        row_id: UUID,
        values: Mapping[str, Any],
        filters: Sequence[Filter] = (),
    ) -> Row:
        if not values:
            return await self.get(conn, row_id, filters)
        sets = [f"{_ident(c)} = ${i}" for i, c in enumerate(values, start=2)]
        where, args = _where(filters, 2 + len(values))
        sql = (
            f"UPDATE {_ident(self.name)} SET {', '.join(sets)}, updated_at = now() "
            f"WHERE id = $1 AND {where} RETURNING {self.returning}"
        )
        row = await conn.fetchrow(sql, row_id, *values.values(), *args)
        if row is None:
            raise NotFound(f"{self.label} {row_id} not found")
        return row

    async def delete(self, conn: Connection, row_id: UUID, filters: Sequence[Filter] = ()) -> None:
        where, args = _where(filters, 2)
        sql = f"DELETE FROM {_ident(self.name)} WHERE id = $1 AND {where} RETURNING id"
        if await conn.fetchval(sql, row_id, *args) is None:
            raise NotFound(f"{self.label} {row_id} not found")

    async def page(
        self, conn: Connection, query: PageQuery, filters: Sequence[Filter] = ()
    ) -> tuple[list[Row], str | None]:
        """One page in (created_at, id) order and the cursor of the next page, if any."""
        all_filters = list(filters)
        keyset = ""
        args: list[Any] = []
        if query.cursor:
            created_at, last_id = decode_cursor(query.cursor)
            keyset = " AND (created_at, id) > ($1, $2)"
            args = [created_at, last_id]
        where, where_args = _where(all_filters, len(args) + 1)
        limit_mark = len(args) + len(where_args) + 1
        sql = (
            f"SELECT {self.returning} FROM {_ident(self.name)} WHERE {where}{keyset} "
            f"ORDER BY created_at, id LIMIT ${limit_mark}"
        )
        rows = await conn.fetch(sql, *args, *where_args, query.limit + 1)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more and rows else None
        return list(rows), cursor
