"""Jinja filters."""

from __future__ import annotations


def money(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"


def shorten(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
