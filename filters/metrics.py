"""Counters of the filters (scans, verdicts, service failures) for logs and a metrics endpoint.

One process-wide ``FILTER_COUNTERS`` (a ``collections.Counter``); keys are dotted names such as
``spamd.unavailable`` or ``clamd.infected``. Reading it is cheap; a metrics exporter can publish
``snapshot()`` as it is.
"""

from __future__ import annotations

from collections import Counter

FILTER_COUNTERS: Counter[str] = Counter()


def count(name: str, amount: int = 1) -> None:
    FILTER_COUNTERS[name] += amount


def snapshot() -> dict[str, int]:
    return dict(FILTER_COUNTERS)
