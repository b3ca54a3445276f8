"""The body of `govmail check` (mailserver/cli.py registers it and imports this lazily)."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from mailserver.doctor.results import exit_status, print_table, results_json
from mailserver.doctor.runner import CheckOptions, run_checks
from storage.models import utcnow


def run_check_command(config_path: Path, dns: bool, as_json: bool) -> int:
    """Run every check, print the report on stdout; the exit status (1: something failed)."""
    results = run_checks(config_path, CheckOptions(now=utcnow(), dns=dns))
    if as_json:
        sys.stdout.write(results_json(results) + "\n")
    else:
        print_table(results, Console(soft_wrap=False))
    return exit_status(results)
