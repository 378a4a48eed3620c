"""Shared test set-up."""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterator
from typing import Any

import aioresponses.core
import pytest
from aiohttp import ClientResponse
from hypothesis import settings

# Property tests draw the same examples on every run: a failure is reproducible, never flaky.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.load_profile("deterministic")


def _teach_aioresponses_aiohttp_3_14() -> None:
    """Let aioresponses 0.7.x build responses under aiohttp 3.14.

    aiohttp 3.14 (a security release) added a required ``stream_writer`` argument to
    ``ClientResponse``; aioresponses does not pass it yet (pnuckowski/aioresponses#289).
    A mocked response was never written by a real writer, so its output size is 0.
    """
    if "stream_writer" not in inspect.signature(ClientResponse.__init__).parameters:
        return

    class _Response(ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
            super().__init__(*args, **kwargs)

    aioresponses.core.ClientResponse = _Response  # type: ignore[misc]  # test-only shim, see above


_teach_aioresponses_aiohttp_3_14()

# The fixtures are opt-in (no pytest11 entry point): load them as a user would.
pytest_plugins = ["gtmhub_async.testing.plugin"]


@pytest.fixture
def redis_server() -> Iterator[Any]:
    """Start a real redis-server on 127.0.0.1 on a free port; stop it after the test."""
    from redis_server import RedisServer  # tests/ is on sys.path (rootdir conftest)

    with RedisServer() as server:
        yield server


@pytest.fixture
def fresh_converter(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Use a converter built inside the test, so that mutation testing sees its builders run.

    The SDK builds its converter when ``gtmhub_async.converter`` is imported, before mutmut
    picks a mutant; a test module marked with this fixture checks one built afresh instead.
    """
    from gtmhub_async import converter

    built = converter._build()
    monkeypatch.setattr(converter, "converter", built)
    monkeypatch.setattr(converter, "_HOOKS", {})
    return built
