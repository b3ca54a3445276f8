"""Free space where the database and the message files live."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mailserver.doctor.results import CheckResult, fail, ok, warn

CHECK = "disk space"
GIB = 1024**3


@dataclass(frozen=True)
class SpaceLimits:
    """Warn below ``warn_bytes`` or ``warn_ratio`` free; fail below ``fail_bytes`` free."""

    warn_bytes: int = 2 * GIB
    warn_ratio: float = 0.10
    fail_bytes: int = 0  # the caller passes the largest message: not even one would fit


def size_text(count: int) -> str:
    return f"{count / GIB:.1f} GiB"


def check_free_space(label: str, path: Path, limits: SpaceLimits) -> CheckResult:
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        return fail(
            CHECK,
            f"{label} {path}: {exc.strerror or exc}",
            f"create {path} or fix [server]/[storage]",
        )
    free = f"{label} {path}: {size_text(usage.free)} free of {size_text(usage.total)}"
    if usage.free < limits.fail_bytes:
        return fail(
            CHECK, free + ": not even one largest message fits", f"free space on {path} now"
        )
    if usage.free < limits.warn_bytes or usage.free < usage.total * limits.warn_ratio:
        return warn(
            CHECK,
            free,
            f"free space or grow the volume of {path} (below {size_text(limits.warn_bytes)}"
            f" or {limits.warn_ratio:.0%} free)",
        )
    return ok(CHECK, free)


def check_disks(places: Sequence[tuple[str, Path]], limits: SpaceLimits) -> list[CheckResult]:
    """One result per file system: places on the same device are checked once."""
    results: list[CheckResult] = []
    seen: set[int] = set()
    for label, path in places:
        try:
            device = os.stat(path).st_dev
        except OSError:
            device = -1 - len(seen)  # missing: reported by check_free_space
        if device in seen:
            continue
        seen.add(device)
        results.append(check_free_space(label, path, limits))
    return results
