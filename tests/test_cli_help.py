"""`govmail` help text and empty lists: every command says what it does, every list says when
it is empty (on stderr, so that scripts reading stdout see no row)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import typer.main
from typer.testing import CliRunner

from mailserver.cli import app
from mailserver.init_instance import initialise_instance

PASSWORD = "Mat-khau#2026\n"


def command_tree(
    command: click.Command, path: str = "govmail"
) -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from command_tree(sub, f"{path} {name}")


def help_text(*args: str) -> str:
    """A --help page with its box drawing and line wrapping undone."""
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    words = result.output.replace("│", " ").replace("╭", " ").replace("╰", " ").split()
    return " ".join(word for word in words if set(word) != {"─"})


def test_every_command_and_group_has_a_help_line() -> None:
    tree = dict(command_tree(typer.main.get_command(app)))
    assert {"govmail agency add", "govmail alias list", "govmail queue list"} <= set(tree)
    missing = [path for path, command in tree.items() if not command.get_short_help_str().strip()]
    assert missing == []


def test_serve_names_the_worker_processes() -> None:
    text = help_text("serve")
    assert "one process" not in text.replace("everything in one process", "")
    assert "worker processes (one per CPU core)" in text and "server.workers" in text


def test_filters_that_default_to_no_filter_show_no_default() -> None:
    text = help_text("mailbox", "search")
    assert "--never-logged-in --logged-in Only mailboxes never logged in" in text
    assert "default: logged-in" not in text and "[default: None]" not in text


@pytest.fixture
def config(tmp_path: Path) -> str:
    return str(initialise_instance(tmp_path / "inst", "hanoi.gov.vn").config_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mailbox", "list"], "no mailboxes"),
        (["mailbox", "search", "nobody"], "no mailboxes"),
        (["queue", "list"], "no pending queue entries"),
        (["queue", "list", "--all"], "no queue entries"),
        (["alias", "list"], "no aliases"),
        (["group", "list"], "no groups"),
        (["agency", "list", "--q", "nothing"], "no agencies"),
        (["agency", "list", "--offset", "5"], "no agencies on this page (1 in all)"),
        (["domain", "list", "--agency", "99"], "no domains"),
        (["audit", "list", "--action", "nothing."], "no audit events"),
        (["mailbox", "purge"], "no leavers past their retention period"),
    ],
)
def test_an_empty_list_says_so_on_stderr(config: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, [*args, "-c", config])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == f"{message}\n"


def test_empty_json_lists_are_empty_arrays(config: str) -> None:
    for args in (["mailbox", "list"], ["queue", "list"], ["alias", "list"]):
        result = CliRunner().invoke(app, [*args, "--json", "-c", config])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == [] and result.stderr == ""


def test_senders_list_of_a_mailbox_without_rules(config: str) -> None:
    added = CliRunner().invoke(
        app,
        ["mailbox", "add", "an@hanoi.gov.vn", "--password-stdin", "-c", config],
        input=PASSWORD,
    )
    assert added.exit_code == 0, added.output
    empty = CliRunner().invoke(app, ["senders", "list", "an@hanoi.gov.vn", "-c", config])
    assert (empty.exit_code, empty.stdout) == (0, "")
    assert empty.stderr == "no sender rules for an@hanoi.gov.vn\n"
    CliRunner().invoke(app, ["senders", "block", "an@hanoi.gov.vn", "@spam.example", "-c", config])
    listed = CliRunner().invoke(app, ["senders", "list", "an@hanoi.gov.vn", "-c", config])
    assert (listed.stdout, listed.stderr) == ("block\t@spam.example\n", "")
