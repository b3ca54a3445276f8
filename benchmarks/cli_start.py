"""CLI start-up benchmark: wall-clock time of short `govmail` commands, median of N runs.

    python benchmarks/cli_start.py --runs 15

Creates a throwaway instance (`govmail init` in a temporary directory), then runs each command
as a fresh process, the way an administrator does, and prints the median and the fastest run
(wall clock) and the median CPU time (user + system; steadier on a busy machine). A first,
uncounted run of each command writes the bytecode cache, as installing the package does.
The command is the installed `govmail` console script found next to this Python (not a pyenv or
virtualenv shim, whose own start-up is not govmail's), or `python -m mailserver` without one.
Run it with PYTHONPATH set to the checkout being measured.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OFFLINE = {"GOVMAIL_DNS__SYSTEM_RESOLVER": "false", "GOVMAIL_SPAMD__ENABLED": "false"}


def govmail_command() -> list[str]:
    script = Path(sys.executable).with_name("govmail")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "mailserver"]


def scenarios(config: str) -> list[tuple[str, list[str]]]:
    return [
        ("govmail --help", ["--help"]),
        ("govmail mailbox --help", ["mailbox", "--help"]),
        ("govmail mailbox list --help", ["mailbox", "list", "--help"]),
        ("govmail mailbox list", ["mailbox", "list", "-c", config]),
        ("govmail queue list", ["queue", "list", "-c", config]),
        ("govmail agency list", ["agency", "list", "-c", config]),
    ]


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_runs(command: list[str], runs: int, env: dict[str, str]) -> tuple[list[float], float]:
    """Wall-clock seconds of each run, and the median CPU seconds (user + system) per run."""
    seconds: list[float] = []
    cpu: list[float] = []
    subprocess.run(command, capture_output=True, env=env, check=False)  # warm-up, not counted
    for _ in range(runs):
        cpu_before = children_cpu_seconds()
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, env=env, check=False)
        seconds.append(time.perf_counter() - started)
        cpu.append(children_cpu_seconds() - cpu_before)
        if result.returncode != 0:
            raise SystemExit(f"{command} failed: {result.stderr.decode(errors='replace')}")
    return seconds, statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="Runs per command (median shown).")
    args = parser.parse_args()
    # Bytecode cached as on an installed system (pip compiles it): the warm-up run writes it.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GOVMAIL_") and k != "PYTHONDONTWRITEBYTECODE"
    } | OFFLINE
    base = govmail_command()
    data_dir = Path(tempfile.mkdtemp(prefix="govmail-cli-bench-"))
    try:
        init = [*base, "init", "--data-dir", str(data_dir / "inst"), "--domain", "bench.gov.vn"]
        subprocess.run(init, capture_output=True, env=env, check=True)
        config = str(data_dir / "inst" / "govmail.toml")
        print(f"command: {' '.join(base)}; {args.runs} runs each")
        print(f"{'command':<30} {'median s':>9} {'min s':>7} {'cpu s':>7}")
        for label, extra in scenarios(config):
            seconds, cpu = time_runs([*base, *extra], args.runs, env)
            median = statistics.median(seconds)
            print(f"{label:<30} {median:>9.3f} {min(seconds):>7.3f} {cpu:>7.3f}")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
