"""The content scanners `govmail serve` depends on: its own spamd, and a start-up check of each.

With ``[spamd] managed = true`` (what `govmail init` writes) the serving process (the supervisor,
or the only process with ``server.workers = 1``) runs Debian's spamd as a child on a private unix
socket, ``<data_dir>/spamd/spamd.sock``, with its helpers' home beside it (Bayes stays where
SpamAssassin puts it: the user's ~/.spamassassin; as root spamd runs as nobody, without one).
Rules are the ones Debian ships in /usr/share/spamassassin (or sa-update's, when it has run):
spamd needs no network to start, and runs local tests only unless ``network_tests`` is on. A
spamd that exits is started again after a delay that doubles with each quick death (1 s up to a
minute), each logged; on shutdown it is stopped (SIGTERM, then SIGKILL of its process group).
Nothing here blocks the event loop: the child is an asyncio subprocess and readiness is polled
with async PINGs.

`serve` waits (at most ``READY_WAIT_SECONDS``) for the managed spamd to answer before it listens,
so that mail is not refused while it starts; the spam check waits for a restarting one
(filters/spam.py, ``connect_wait_seconds``). ``report_scanners`` writes one clear log line for
each configured scanner that is missing or does not answer, with what to do about it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import pwd
import shutil
import signal
from pathlib import Path

import aiospamc

from filters.antivirus import ClamdClient
from filters.services import ServiceAddress
from mailserver.config import GovmailConfig

log = logging.getLogger("govmail")

SPAMD_CANDIDATES = ("/usr/sbin/spamd", "/usr/bin/spamd")
READY_WAIT_SECONDS = 60.0
PING_INTERVAL_SECONDS = 0.2
PROBE_TIMEOUT_SECONDS = 3.0
FIRST_RESTART_DELAY_SECONDS = 1.0
MAX_RESTART_DELAY_SECONDS = 60.0
STABLE_SECONDS = 60.0  # a spamd that ran this long died by accident: the delay starts over
STOP_TIMEOUT_SECONDS = 10.0
LOG_TAIL_LINES = 20
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
SPAMD_INSTALL_HINT = (
    "install Debian's spamassassin and spamd packages "
    "(bash scripts/install-test-deps.sh --server does), or set [spamd] enabled = false"
)
UNPRIVILEGED_USER = "nobody"  # spamd will not scan as root


def find_spamd() -> str | None:
    """The spamd executable, or None when it is not installed."""
    found = shutil.which("spamd")
    if found:
        return found
    return next((path for path in SPAMD_CANDIDATES if os.access(path, os.X_OK)), None)


def restart_delay(quick_deaths: int) -> float:
    """Seconds before the next start, after ``quick_deaths`` deaths in a row (1, 2, 4 ... 60)."""
    delay = FIRST_RESTART_DELAY_SECONDS * 2 ** max(0, quick_deaths - 1)
    return min(MAX_RESTART_DELAY_SECONDS, delay)


async def spamd_answers(address: str, wait_seconds: float = PROBE_TIMEOUT_SECONDS) -> bool:
    """True if spamd at ``address`` answers PING."""
    where = ServiceAddress.parse(address)
    target: dict[str, object] = (
        {"socket_path": Path(where.socket_path)}
        if where.socket_path
        else {"host": where.host, "port": where.port}
    )
    try:
        await aiospamc.ping(timeout=aiospamc.Timeout(total=wait_seconds), **target)
    except Exception:  # refused, no socket yet, timeout, garbage: not answering
        return False
    return True


class ManagedSpamd:
    """One spamd child of this process, kept running until ``stop``."""

    def __init__(self, config: GovmailConfig, executable: str) -> None:
        self.executable = executable
        self.directory = config.spamd_dir
        self.home = self.directory / "home"
        self.socket_path = Path(config.spamd_address)
        self.network_tests = config.spamd.network_tests
        self.ready = asyncio.Event()
        self.pid: int | None = None
        self.restarts = 0
        self.log_tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if len(str(self.socket_path).encode()) > MAX_SOCKET_PATH:
            raise OSError(  # `serve` reports an OSError as "cannot start: ..."
                f"the managed spamd's socket path {self.socket_path} is too long for a unix "
                "socket: use a shorter data_dir, or run spamd yourself ([spamd] managed = false)"
            )
        self._task = asyncio.create_task(self._supervise(), name="govmail-managed-spamd")

    async def wait_ready(self, wait_seconds: float) -> bool:
        """True once spamd answers; False if it has not within ``wait_seconds``."""
        try:
            await asyncio.wait_for(self.ready.wait(), wait_seconds)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                log.error("event=spamd_kill pid=%d reason=stop_timeout", process.pid)
        if process is not None:
            _kill_group(process.pid)
            with contextlib.suppress(ProcessLookupError):
                await process.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        log.info("event=spamd_stopped")

    # ------------------------------------------------------------ the child

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        quick_deaths = 0
        while not self._stopping:
            started = loop.time()
            try:
                process = await self._spawn()
            except OSError as exc:
                log.error("event=spamd_start_failed error=%r", exc)
                return
            status = await self._watch(process)
            if self._stopping:
                return
            self.ready.clear()
            _kill_group(process.pid)  # its children, if only the parent died
            quick_deaths = 1 if loop.time() - started >= STABLE_SECONDS else quick_deaths + 1
            delay = restart_delay(quick_deaths)
            tail = " | ".join(list(self.log_tail)[-3:])
            log.error(
                "event=spamd_died pid=%d status=%s restart_in_seconds=%.0f last_log=%r",
                process.pid, status, delay, tail,
            )  # fmt: skip
            await asyncio.sleep(delay)
            self.restarts += 1
            log.info("event=spamd_restarting attempt=%d", self.restarts)

    async def _spawn(self) -> asyncio.subprocess.Process:
        await asyncio.to_thread(self._prepare_directory)
        process = await asyncio.create_subprocess_exec(
            *self._command(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "HOME": str(self.home)},
            start_new_session=True,  # its own process group: stopped as a whole
        )
        self._process = process
        self.pid = process.pid
        log.info("event=spamd_starting pid=%d socket=%s", process.pid, self.socket_path)
        return process

    async def _watch(self, process: asyncio.subprocess.Process) -> int:
        """Relay its log and announce readiness; returns its exit status."""
        relay = asyncio.create_task(self._relay_log(process))
        readiness = asyncio.create_task(self._announce_ready(process))
        try:
            return await process.wait()
        finally:
            readiness.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await readiness
            with contextlib.suppress(Exception):
                await asyncio.wait_for(relay, 1.0)

    async def _announce_ready(self, process: asyncio.subprocess.Process) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not await spamd_answers(str(self.socket_path), wait_seconds=1.0):  # noqa: ASYNC110
            await asyncio.sleep(PING_INTERVAL_SECONDS)  # polling a child's start-up
        self.ready.set()
        log.info(
            "event=spamd_ready pid=%d socket=%s seconds=%.1f",
            process.pid, self.socket_path, loop.time() - started,
        )  # fmt: skip

    async def _relay_log(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self.log_tail.append(line)
            level = logging.WARNING if (" warn: " in line or " error: " in line) else logging.DEBUG
            log.log(level, "event=spamd_log pid=%d line=%r", process.pid, line)

    def _command(self) -> list[str]:
        command = [
            self.executable, "--listen", str(self.socket_path), "--socketmode", "0600",
            "--nouser-config", "--allow-tell", "--helper-home-dir", str(self.home),
            "--syslog", "stderr",
        ]  # fmt: skip
        if not self.network_tests:
            command.append("--local")
        if os.geteuid() == 0:
            command += ["--username", UNPRIVILEGED_USER]
        return command

    def _prepare_directory(self) -> None:
        """The socket's directory (private) and spamd's helper home; a stale socket removed."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.home.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:  # spamd scans as nobody
            nobody = pwd.getpwnam(UNPRIVILEGED_USER)
            os.chown(self.home, nobody.pw_uid, nobody.pw_gid)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def start_managed_spamd(config: GovmailConfig) -> ManagedSpamd | None:
    """Start the managed spamd if the config asks for one; None if not (or not installed)."""
    if not (config.spamd.enabled and config.spamd.managed):
        return None
    executable = find_spamd()
    if executable is None:
        log.error(
            "event=scanner_missing service=spamd managed=true "
            "effect=\"inbound mail gets [spamd] on_failure (%s)\" fix=\"%s\"",
            config.spamd.on_failure, SPAMD_INSTALL_HINT,
        )  # fmt: skip
        return None
    spamd = ManagedSpamd(config, executable)
    spamd.start()
    return spamd


async def wait_for_managed_spamd(
    spamd: ManagedSpamd | None, config: GovmailConfig, stop: asyncio.Event
) -> None:
    """Before listening: give the managed spamd up to ``READY_WAIT_SECONDS`` to answer (a
    SIGTERM meanwhile, ``stop``, ends the wait)."""
    if spamd is None:
        return
    ready = asyncio.create_task(spamd.wait_ready(READY_WAIT_SECONDS))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait((ready, stopped), return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not ready.done():
        ready.cancel()
        return
    if ready.result():
        return
    tail = " | ".join(list(spamd.log_tail)[-3:])
    log.error(
        "event=scanner_unavailable service=spamd managed=true address=%s "
        "effect=\"inbound mail gets [spamd] on_failure (%s) until it answers\" "
        "fix=\"see its event=spamd_log lines; or run spamd yourself ([spamd] managed = false)\" "
        "last_log=%r",
        config.spamd_address, config.spamd.on_failure, tail,
    )  # fmt: skip


async def report_scanners(config: GovmailConfig) -> list[str]:
    """One error line for each external scanner that does not answer; returns the services."""
    checks: list[tuple[str, str, asyncio.Task[bool]]] = []
    if config.spamd.enabled and not config.spamd.managed:
        address = config.spamd.address
        checks.append(("spamd", address, asyncio.create_task(spamd_answers(address))))
    if config.clamd.enabled:
        address = config.clamd.address
        checks.append(("clamd", address, asyncio.create_task(_clamd_answers(address))))
    silent: list[str] = []
    for service, address, answered in checks:
        if await answered:
            continue
        silent.append(service)
        policy = getattr(config, service).on_failure
        log.error(
            "event=scanner_unavailable service=%s address=%s "
            "effect=\"inbound mail gets [%s] on_failure (%s) until it answers\" fix=\"%s\"",
            service, address, service, policy, _fix_for(service),
        )  # fmt: skip
    return silent


def _fix_for(service: str) -> str:
    if service == "spamd":
        return (
            "start spamd at [spamd] address, or set [spamd] managed = true to let govmail run it "
            "(" + SPAMD_INSTALL_HINT + ")"
        )
    return "start clamd (Debian: clamav-daemon) at [clamd] address, or set [clamd] enabled = false"


async def _clamd_answers(address: str) -> bool:
    try:
        await ClamdClient(address, PROBE_TIMEOUT_SECONDS).ping()
    except Exception:  # refused, timeout, wrong reply
        return False
    return True
