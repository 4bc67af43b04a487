"""Queries used by the views."""

from __future__ import annotations

from dataclasses import dataclass

from app import db


@dataclass(frozen=True)
class Item:
    id: int
    name: str
    price_cents: int


def recent_items(limit: int) -> list[Item]:
    rows = db.query(
        "select id, name, price_cents from bench_items order by id desc limit %s", (limit,)
    )
    return [Item(*row) for row in rows]


def item(item_id: int) -> Item | None:
    rows = db.query("select id, name, price_cents from bench_items where id = %s", (item_id,))
    return Item(*rows[0]) if rows else None


def count_items() -> int:
    return int(db.query("select count(*) from bench_items")[0][0])
