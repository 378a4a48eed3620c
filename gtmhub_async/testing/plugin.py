"""Pytest fixtures: ``fake_gtmhub`` (a started FakeGtmhub) and ``gtmhub_client`` (a client on it).

Opt in from your top-level ``conftest.py`` (needs ``pip install 'gtmhub-async[testing]'``)::

    pytest_plugins = ["gtmhub_async.testing.plugin"]

Why opt-in and not a ``pytest11`` entry point: respx and pytest-httpx register theirs
automatically because their fixtures are synchronous and import only their own
dependencies, so loading them into every pytest run is harmless. These fixtures are
async and need pytest-asyncio: auto-loaded, they would stop the test suite of every
user without pytest-asyncio (pytest exits 3 on a plugin that fails to import), and
import aiohttp into every run. So nothing here runs unless a project asks for it.

Override ``fake_gtmhub_options`` or ``gtmhub_client_options`` in a test module or
conftest to pass keyword arguments to ``FakeGtmhub`` or ``FakeGtmhub.client``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

try:
    import pytest_asyncio
except ImportError:  # one line instead of a traceback from deep inside pytest
    raise ImportError(
        "gtmhub_async.testing.plugin needs pytest-asyncio: pip install 'gtmhub-async[testing]'",
        name="pytest_asyncio",
    ) from None

from gtmhub_async.testing.fake import FakeGtmhub

if TYPE_CHECKING:
    from gtmhub_async.client import GtmhubClient

__all__ = ["fake_gtmhub", "fake_gtmhub_options", "gtmhub_client", "gtmhub_client_options"]


@pytest.fixture
def fake_gtmhub_options() -> dict[str, Any]:
    """Return the keyword arguments of the ``fake_gtmhub`` server (override to change them)."""
    return {}


@pytest.fixture
def gtmhub_client_options() -> dict[str, Any]:
    """Return the keyword arguments of the ``gtmhub_client`` client (override to change them)."""
    return {}


@pytest_asyncio.fixture
async def fake_gtmhub(fake_gtmhub_options: dict[str, Any]) -> AsyncIterator[FakeGtmhub]:
    """Yield a started FakeGtmhub, closed after the test."""
    async with FakeGtmhub(**fake_gtmhub_options) as fake:
        yield fake


@pytest_asyncio.fixture
async def gtmhub_client(
    fake_gtmhub: FakeGtmhub, gtmhub_client_options: dict[str, Any]
) -> AsyncIterator[GtmhubClient]:
    """Yield an open GtmhubClient talking to ``fake_gtmhub``."""
    async with fake_gtmhub.client(**gtmhub_client_options) as client:
        yield client
