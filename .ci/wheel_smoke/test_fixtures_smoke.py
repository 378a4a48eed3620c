"""The installed wheel's fixtures work: a fake server and a client talking to it."""

from __future__ import annotations

import pytest

from gtmhub_async import GtmhubClient, Kpi
from gtmhub_async.testing import FakeGtmhub


@pytest.mark.asyncio
async def test_the_fixtures_serve_a_kpi(
    fake_gtmhub: FakeGtmhub, gtmhub_client: GtmhubClient
) -> None:
    (kpi,) = fake_gtmhub.add_kpis(1)
    got = await gtmhub_client.kpis.get(kpi["id"])
    assert isinstance(got, Kpi)
    assert got.id == kpi["id"]
    assert fake_gtmhub.count("GET", "/v1/kpis/{kpiId}") == 1
