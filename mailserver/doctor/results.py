"""The outcome of one check, and the ways `govmail check` shows a list of them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum

from rich.console import Console
from rich.table import Table
from rich.text import Text


class Status(StrEnum):
    OK = "ok"
    INFO = "info"  # worth knowing, nothing to fix
    WARN = "warn"  # works, but needs attention soon
    FAIL = "fail"  # broken: `govmail check` exits 1


@dataclass(frozen=True)
class CheckResult:
    """One line of the report: what was checked, how it stands, and what to do about it."""

    check: str
    status: Status
    detail: str
    fix: str = ""


STATUS_STYLE = {Status.OK: "green", Status.INFO: "cyan", Status.WARN: "yellow", Status.FAIL: "red"}


def ok(check: str, detail: str) -> CheckResult:
    return CheckResult(check, Status.OK, detail)


def info(check: str, detail: str, fix: str = "") -> CheckResult:
    return CheckResult(check, Status.INFO, detail, fix)


def warn(check: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(check, Status.WARN, detail, fix)


def fail(check: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(check, Status.FAIL, detail, fix)


def exit_status(results: Sequence[CheckResult]) -> int:
    """1 when any check failed; warnings alone are 0."""
    return 1 if any(r.status is Status.FAIL for r in results) else 0


def results_json(results: Sequence[CheckResult]) -> str:
    return json.dumps([asdict(r) for r in results], ensure_ascii=False, indent=2)


def print_table(results: Sequence[CheckResult], console: Console) -> None:
    table = Table(show_lines=False)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail")
    table.add_column("fix")
    for result in results:
        # Text, not markup: details hold brackets ("[server] hostname").
        table.add_row(
            Text(result.check),
            Text(result.status.value, style=STATUS_STYLE[result.status]),
            Text(result.detail),
            Text(result.fix),
        )
    console.print(table)
    counts = {s: sum(r.status is s for r in results) for s in Status}
    console.print(", ".join(f"{n} {s.value}" for s, n in counts.items() if n))
