"""Unknown configuration keys are errors naming the key and the closest valid one, at every level
of the file and in GOVMAIL_<SECTION>__<KEY> overrides; every documented key still loads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mailserver.config import ConfigError, GovmailConfig, load_config
from tests.support.process import run_cli
from tests.test_config_docs import documented_keys


@pytest.fixture(autouse=True)
def no_govmail_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("GOVMAIL_"):
            monkeypatch.delenv(name)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "govmail.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


def test_unknown_key_in_a_section_names_it_and_the_closest_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[spamd]\nenable = false\n")
    assert load_error(path) == (f"{path}: unknown key spamd.enable (did you mean spamd.enabled?)")


def test_unknown_section_names_the_closest_section(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[smpt]\nmx_listen = '0.0.0.0:25'\n")
    assert load_error(path) == f"{path}: unknown key smpt (did you mean smtp?)"


def test_key_above_its_section_header_points_to_its_section(tmp_path: Path) -> None:
    path = write_config(tmp_path, "hostname = 'mail.so.gov.vn'\n[server]\n")
    assert load_error(path) == (
        f"{path}: unknown key hostname (did you mean server.hostname, under [server]?)"
    )


def test_unknown_key_in_a_route_names_its_full_path(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "[[routing.routes]]\ndomain = 'a.gov.vn'\nhost = '10.0.0.1'\n"
        "[[routing.routes]]\ndomain = 'b.gov.vn'\nhost = '10.0.0.2'\nverify_certificat = true\n",
    )
    assert load_error(path) == (
        f"{path}: unknown key routing.routes[1].verify_certificat"
        " (did you mean routing.routes[1].verify_certificate?)"
    )


def test_a_key_with_nothing_close_gets_no_suggestion(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[dkim]\nxyzzy = 1\n")
    assert load_error(path) == f"{path}: unknown key dkim.xyzzy"


def test_internal_fields_are_not_config_keys(tmp_path: Path) -> None:
    path = write_config(tmp_path, "config_path = '/etc/other.toml'\n")
    assert load_error(path) == f"{path}: unknown key config_path"


def test_every_unknown_key_is_reported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, "[spamd]\nenable = false\n[clamd]\nenabeld = true\n")
    monkeypatch.setenv("GOVMAIL_SPAMD__ADRESS", "127.0.0.1:783")
    lines = load_error(path).splitlines()
    assert lines == [
        f"{path}: unknown key spamd.enable (did you mean spamd.enabled?)",
        f"{path}: unknown key clamd.enabeld (did you mean clamd.enabled?)",
        f"{path}: environment variable GOVMAIL_SPAMD__ADRESS:"
        " unknown key spamd.adress (did you mean spamd.address?)",
    ]


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        ("GOVMAIL_SPAMD__ENABLE", "unknown key spamd.enable (did you mean spamd.enabled?)"),
        ("govmail_spamd__enable", "unknown key spamd.enable (did you mean spamd.enabled?)"),
        ("GOVMAIL_SPAM__ENABLED", "unknown key spam (did you mean spamd?)"),
    ],
)
def test_unknown_environment_override_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, message: str
) -> None:
    path = write_config(tmp_path, "[server]\nhostname = 'mail.so.gov.vn'\n")
    monkeypatch.setenv(variable, "false")
    assert load_error(path) == f"{path}: environment variable {variable}: {message}"


def test_environment_variables_that_are_not_overrides_are_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, "")
    monkeypatch.setenv("GOVMAIL_CONFIG", str(path))
    monkeypatch.setenv("GOVMAIL_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("GOVMAIL_SPAMD__ENABLED", "false")
    assert load_config(path).spamd.enabled is False


def test_other_validation_errors_keep_pydantic_text(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[smtp]\nmx_listen = 'nonsense'\n")
    assert "host:port" in load_error(path)


def test_the_cli_reports_an_unknown_key_and_exits_1(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[spamd]\nenable = false\n")
    result = run_cli("mailbox", "list", "--config", str(path))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: {path}: unknown key spamd.enable (did you mean spamd.enabled?)"
    )


def every_documented_key_as_toml() -> str:
    """A config file setting every key of deploy/CONFIG.md (to its default), and one route
    with every route key."""
    defaults = GovmailConfig().model_dump(mode="json")
    sections: dict[str, list[str]] = {}
    for dotted in sorted(documented_keys() - {"routing.routes"}):  # set by the route below
        section, key = dotted.split(".")
        sections.setdefault(section, []).append(f"{key} = {json.dumps(defaults[section][key])}")
    text = "".join(f"[{name}]\n" + "\n".join(lines) + "\n" for name, lines in sections.items())
    return text + (
        "[[routing.routes]]\ndomain = '.hanoi.gov.vn'\nhost = '10.1.2.3'\nport = 25\n"
        "tls = 'required'\nverify_certificate = true\nca_file = 'ca.pem'\n"
    )


def test_every_documented_key_loads(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, every_documented_key_as_toml()))
    assert config.spamd.enabled is True
    assert config.routing.routes[0].ca_file == Path("ca.pem")
    unread = [
        dotted
        for dotted in documented_keys()
        if dotted.split(".")[1] not in getattr(config, dotted.split(".")[0]).model_fields_set
    ]
    assert unread == []
