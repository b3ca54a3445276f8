"""tests/support/requirements.py: a missing program skips a test here, and fails it in CI."""

from __future__ import annotations

import shutil

import pytest

from tests.support.requirements import require_program


def test_missing_program_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"no-such-tool is not installed .*tool-pkg"):
        require_program("no-such-tool", "tool-pkg")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"no-such-tool is not installed .*, in CI"):
        require_program("no-such-tool", "tool-pkg")
    assert require_program("sh", "dash") == shutil.which("sh")
