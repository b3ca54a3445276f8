"""Fixtures of the filter tests: a real spamd on a loopback port, and the shared corpus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.requirements import missing
from tests.support.spamd import SpamdUnavailable, free_port, running_spamd

__all__ = ["corpus_file", "free_port"]

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
SPAMASSASSIN_DATA = CORPUS / "apache-spamassassin-tdata"


def corpus_file(relative: str) -> bytes:
    path = SPAMASSASSIN_DATA / relative
    if not path.exists():
        pytest.skip(f"test corpus absent: {path} (see ../shared/corpus/INDEX.md)")
    return path.read_bytes()


@pytest.fixture(scope="session")
def spamd_address() -> Iterator[str]:
    """Debian's spamd on 127.0.0.1:<free port>, for the whole run."""
    try:
        with running_spamd() as address:
            yield address
    except SpamdUnavailable as exc:
        if "not installed" in str(exc):
            missing("spamd", "spamd (spamassassin before Debian 12)")
        pytest.fail(str(exc))
