"""deploy/CONFIG.md documents every configuration key, and only real ones."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from mailserver.config import GovmailConfig

DOC = Path(__file__).resolve().parents[1] / "deploy" / "CONFIG.md"


def config_keys() -> set[str]:
    keys = set()
    for section, field in GovmailConfig.model_fields.items():
        if field.exclude:
            continue
        model = field.default_factory() if field.default_factory else None  # type: ignore[call-arg]
        assert isinstance(model, BaseModel)
        keys |= {f"{section}.{key}" for key in type(model).model_fields}
    return keys


def documented_keys() -> set[str]:
    keys = set()
    section = ""
    for line in DOC.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"## \[(\w+)\]", line)
        if heading:
            section = heading.group(1)
        row = re.match(r"\| `(\w+)` \|", line)
        if row and section:
            keys.add(f"{section}.{row.group(1)}")
    return keys


def test_every_config_key_is_documented() -> None:
    assert config_keys() - documented_keys() == set()


def test_no_documented_key_is_invented() -> None:
    assert documented_keys() - config_keys() == set()
