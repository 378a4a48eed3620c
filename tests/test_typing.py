"""Static checks: the bound endpoint methods carry their routes' types (run by mypy in CI)."""

from __future__ import annotations

import inspect
from typing import assert_type

from gtmhub_async import GtmhubClient, Kpi, KpiPage, KpiSnapshot


async def typed_calls(client: GtmhubClient) -> None:
    """Never run: mypy checks that each method returns its route's model."""
    assert_type(await client.kpis.get("5e8c27e3dcdddaa4addbdee8"), Kpi)
    assert_type(await client.kpis.list_page(take=10), KpiPage)
    assert_type(
        await client.kpi_snapshots.list(ids=["5e8c27e3dcdddaa4addbdee8"]), list[KpiSnapshot]
    )
    assert_type(await client.insights.kpi_usages("5e8c27e3dcdddaa4addbdee8"), list[Kpi])
    assert_type(await client.kpis.delete("5e8c27e3dcdddaa4addbdee8"), None)


def test_methods_show_their_signatures_at_run_time() -> None:
    client = GtmhubClient("t", "5be26318e5274a0007f17f61")
    assert str(inspect.signature(client.kpis.get)) == (
        "(kpi_id: 'str', *, timeout: 'float | None' = None, "
        "formatting: 'Formatting | None' = None)"
    )
    assert client.kpis.get is client.kpis.get
    assert client.kpis.get.__doc__ == "Read one KPI by id."
