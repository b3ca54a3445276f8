"""External programs the tests drive (Debian's mail clients, Perl's Mail::DKIM, spamd).

Where one is missing, the test is skipped with the reason and the Debian package that brings it;
in CI (CI=true) it fails instead, since scripts/install-test-deps.sh installs them all there and a
missing one means the install is broken, not that the test may be left out.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def missing(what: str, package: str) -> NoReturn:
    """Skip (or, in CI, fail) the current test: ``what`` is not installed."""
    reason = f"{what} is not installed (Debian package {package}; see scripts/install-test-deps.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}, in CI", pytrace=False)
    pytest.skip(reason)


def require_program(name: str, package: str) -> str:
    """The path of program ``name``; skips (fails in CI) the test when it is not on PATH."""
    path = shutil.which(name)
    if path is None:
        missing(name, package)
    return path
