"""Schemathesis over the admin API's own OpenAPI document: no 5xx, no response off its schema.

The app runs in-process (ASGI) on a populated instance; every operation gets positive and
negative generated requests, as the system admin (which reaches every code path). The number
of examples is bounded so the run stays within seconds; the seed is fixed so a failure repeats.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Ok
from schemathesis.schemas import APIOperation

from tests.admin_api.world import World, world_on

EXAMPLES_PER_OPERATION = 12
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


class LoopThread:
    """An event loop in a thread, so hypothesis (synchronous) can drive the async app."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def running_world(tmp_path: Path) -> Iterator[tuple[LoopThread, World]]:
    runner = LoopThread()
    manager = world_on(tmp_path, f"sqlite:///{tmp_path / 'govmail.sqlite3'}")
    world = runner.run(manager.__aenter__())
    try:
        yield runner, world
    finally:
        runner.run(manager.__aexit__(None, None, None))
        runner.stop()


def ok_operation(result: Ok[APIOperation] | Err[InvalidSchema]) -> APIOperation:
    """The operation of a schema entry that loaded; a schema error fails the test."""
    if isinstance(result, Err):
        raise result.err()
    return result.ok()


def test_generated_requests_never_get_5xx_or_off_schema_responses(
    running_world: tuple[LoopThread, World],
) -> None:
    runner, world = running_world
    spec = runner.run(world.client.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [ok_operation(result) for result in schema.get_all_operations()]
    assert len(operations) >= 40
    headers = world.auth("system")
    exercised = 0

    async def send(kwargs: dict[str, Any]) -> httpx.Response:
        return await world.client.request(**kwargs)

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @seed(20261124)
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: schemathesis.Case) -> None:
                nonlocal exercised
                kwargs = case.as_transport_kwargs(base_url="http://admin.test", headers=headers)
                kwargs.pop("follow_redirects", None)
                if not kwargs.get("cookies"):
                    kwargs.pop("cookies", None)
                response = runner.run(send(kwargs))
                exercised += 1
                case.validate_response(response, checks=CHECKS)

            try:
                check()
            except Unsatisfiable:
                # No invalid request exists for an operation without inputs: nothing to send.
                assert mode == GenerationMode.NEGATIVE, operation.label
    assert exercised > 500
