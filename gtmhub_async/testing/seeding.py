"""Direct access to a fake's store: read it, and seed KPIs and snapshots without HTTP."""

from __future__ import annotations

import copy
from typing import Any

from gtmhub_async.testing import validate
from gtmhub_async.testing.store import Store
from gtmhub_async.testing.validate import Reject

__all__ = ["StoreAccess"]


class StoreAccess:
    """The store half of ``FakeGtmhub``: live views of the data and fast seeding."""

    _store: Store

    @property
    def kpis(self) -> dict[str, dict[str, Any]]:
        """Return the live KPI store: id -> KPI as the API returns it."""
        return self._store.kpis

    @property
    def snapshots(self) -> dict[str, list[dict[str, Any]]]:
        """Return the live snapshot store: KPI id -> its snapshots in arrival order."""
        return self._store.snapshots

    @property
    def favorites(self) -> dict[str, bool]:
        """Return the live favourite flags of the virtual groups (``myKpis``, ``ungrouped``)."""
        return self._store.favorites

    def add_kpi(self, **fields: Any) -> dict[str, Any]:
        """Store a KPI directly (camelCase fields, validated as on POST) and return it."""
        fields.setdefault("name", f"KPI {len(self._store.kpis) + 1}")
        try:
            changes = validate.kpi_changes(fields, create=True)
        except Reject as exc:
            raise ValueError(exc.message) from None
        return self._store.create_kpi(changes)

    def add_kpis(self, n: int, **overrides: Any) -> list[dict[str, Any]]:
        """Store ``n`` KPIs fast; a callable override is called with the index (0..n-1)."""
        start = len(self._store.kpis)
        created = []
        for i in range(n):
            fields = {k: v(i) if callable(v) else v for k, v in overrides.items()}
            fields.setdefault("name", f"KPI {start + i + 1:05d}")
            created.append(self.add_kpi(**fields))
        return created

    def add_snapshot(self, kpi_id: str, group: str, value: float, **fields: Any) -> dict[str, Any]:
        """Store a snapshot directly (validated as on POST) and return it."""
        if kpi_id not in self._store.kpis:
            raise KeyError(f"no KPI {kpi_id}")
        try:
            body = validate.snapshot_body({"group": group, "value": value, **fields})
        except Reject as exc:
            raise ValueError(exc.message) from None
        return self._store.add_snapshot(kpi_id, body)

    def received_snapshots(self, kpi_id: str) -> list[dict[str, Any]]:
        """Return every snapshot stored for a KPI, in arrival order, even if it was deleted."""
        return [copy.deepcopy(s) for s in self._store.journal if s["kpiId"] == kpi_id]
