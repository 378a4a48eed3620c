"""The fake's in-memory data: KPIs, their snapshots, favourites, and the ids it hands out."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

__all__ = ["IdFactory", "Store", "iso_now"]


def iso_now() -> str:
    """Return the current UTC time as ISO 8601 with milliseconds and a ``Z``."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class IdFactory:
    """Hand out unique 24-hex-digit ids that sort in creation order, like Mongo object ids."""

    def __init__(self, rng: random.Random) -> None:
        self._prefix = rng.getrandbits(32)
        self._counter = rng.getrandbits(24)

    def __call__(self) -> str:
        """Return the next id."""
        self._counter += 1
        return f"{self._prefix:08x}{self._counter:016x}"


def _combine(aggregation: str, values: list[float]) -> float:
    if aggregation == "sum":
        return sum(values)
    if aggregation == "avg":
        return sum(values) / len(values)
    return values[-1]


class Store:
    """Hold one account's KPIs and snapshots; every method assumes validated input."""

    def __init__(
        self,
        *,
        account_id: str,
        user_id: str,
        new_id: Callable[[], str],
        now: Callable[[], str] = iso_now,
    ) -> None:
        self.account_id = account_id
        self.user_id = user_id
        self.new_id = new_id
        self.now = now
        #: KPI id -> the stored KPI (camelCase, as returned on the wire).
        self.kpis: dict[str, dict[str, Any]] = {}
        #: KPI id -> its snapshots in arrival order.
        self.snapshots: dict[str, list[dict[str, Any]]] = {}
        #: Every snapshot ever stored, in arrival order; survives the KPI's deletion.
        self.journal: list[dict[str, Any]] = []
        #: Virtual group name -> whether it is a favourite of the fake's user.
        self.favorites: dict[str, bool] = {}

    def create_kpi(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Store a new KPI from validated fields and return a copy of it."""
        stamp = self.now()
        kpi: dict[str, Any] = {
            "id": self.new_id(),
            "accountId": self.account_id,
            "name": fields.get("name"),
            "description": None,
            # [I] the creator owns a KPI created without owners, as in the product.
            "ownerIds": [self.user_id],
            "aggregation": "last",
            "targetOperator": "should_increase",
            "formatting": {"prefix": "", "suffix": "", "fractionSize": 0},
            "groupIds": [],
        }
        kpi.update(copy.deepcopy(fields))
        kpi.update(
            dateCreated=stamp,
            dateUpdated=stamp,
            createdById=self.user_id,
            modifiedById=self.user_id,
        )
        self.kpis[kpi["id"]] = kpi
        self.snapshots[kpi["id"]] = []
        return copy.deepcopy(kpi)

    def get_kpi(self, kpi_id: str) -> dict[str, Any] | None:
        """Return a copy of a KPI, or None."""
        kpi = self.kpis.get(kpi_id)
        return None if kpi is None else copy.deepcopy(kpi)

    def update_kpi(self, kpi_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply the given fields to an existing KPI and return a copy of it."""
        kpi = self.kpis[kpi_id]
        kpi.update(copy.deepcopy(changes))
        kpi["dateUpdated"] = self.now()
        kpi["modifiedById"] = self.user_id
        return copy.deepcopy(kpi)

    def delete_kpi(self, kpi_id: str) -> None:
        """Remove a KPI and its snapshots."""
        del self.kpis[kpi_id]
        self.snapshots.pop(kpi_id, None)

    def add_snapshot(self, kpi_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store a validated snapshot of an existing KPI and return a copy of it."""
        snapshot: dict[str, Any] = {
            "id": self.new_id(),
            "kpiId": kpi_id,
            "group": body["group"],
            "value": body["value"],
            "timeZone": body.get("timeZone"),
            "description": body.get("description"),
            **{k: v for k, v in body.items() if k not in ("group", "value")},
            "dateCreated": self.now(),
        }
        self.snapshots.setdefault(kpi_id, []).append(snapshot)
        self.journal.append(snapshot)
        return copy.deepcopy(snapshot)

    def daily_values(
        self, kpi_ids: Iterable[str], first: str | None, last: str | None
    ) -> list[dict[str, Any]]:
        """Return one ``{kpiId, group, value}`` per KPI and day, combined by its aggregation."""
        rows: list[dict[str, Any]] = []
        for kpi_id in sorted(set(kpi_ids)):
            kpi = self.kpis.get(kpi_id)
            if kpi is None:
                continue
            by_day: dict[str, list[float]] = {}
            for snapshot in self.snapshots.get(kpi_id, ()):
                group = snapshot["group"]
                if (first is None or group >= first) and (last is None or group <= last):
                    by_day.setdefault(group, []).append(snapshot["value"])
            for group in sorted(by_day):
                value = _combine(str(kpi.get("aggregation")), by_day[group])
                rows.append({"kpiId": kpi_id, "group": group, "value": value})
        return rows
