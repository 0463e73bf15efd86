"""Numbers: the numbers of a claim compared by value with its passage's, across units.

A claim's number must occur in the passage: as written (same unit, or the claim gives none), or as the same
value in another unit (50 亿 = 5 billion). 10% does not match "10 亿", 2024 is not 2025, 5.21 is not 5.12.
A hard check of `verify`, not a cut-off.
"""

from __future__ import annotations

import re

from assistant.text import squash

UNITS = {
    "%": 0.01,
    "万亿": 1e12,
    "亿": 1e8,
    "万": 1e4,
    "千": 1e3,
    "百万": 1e6,
    "thousand": 1e3,
    "million": 1e6,
    "billion": 1e9,
    "trillion": 1e12,
    "bn": 1e9,
    "k": 1e3,
    "m": 1e6,
    "b": 1e9,
}
NUMBER = re.compile(
    r"(?<![\d.])(\d+(?:,\d{3})*(?:\.\d+)?)\s*(%|万亿|百万|亿|万|千|thousand|million|billion|trillion|bn|[kmb](?![a-z]))?",
    re.I,
)


def numbers_supported(claim: str, context: str) -> bool:
    """Every number in the claim occurs in the context: as written (same unit, or the claim gives none),
    or as the same value in another unit (50 亿 = 5 billion). 10% does not match "10 亿"."""
    have = _numbers(context)
    for raw, scaled, unit in _numbers(squash(claim)):
        if not any(
            (_same(raw, r) and (unit == u or not unit)) or (unit and u and _same(scaled, s)) for r, s, u in have
        ):
            return False
    return True


def _numbers(text: str) -> list[tuple[float, float, str]]:
    """(value as written, value in base units, unit) for every number in normalised text."""
    found = []
    for m in NUMBER.finditer(text):
        value = float(m.group(1).replace(",", ""))
        unit = (m.group(2) or "").lower()
        found.append((value, value * UNITS.get(unit, 1.0), unit))
    return found


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))
