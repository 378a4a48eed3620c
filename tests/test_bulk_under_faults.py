"""400 uploads at RateLimit(100) against FakeGtmhub under ordinary faults (#13).

5% of POSTs get 503 + Retry-After 0, 3% are applied and then dropped, 2% get a
500. Every item must land in exactly one outcome, and the stray 503s must never
lower the limiter's rate (they are not a wave): the run the issue measured at
1/s after 22 s. Its elapsed time against the ideal 4 s is in the fidelity
benchmark, not here: tests assert no wall-clock speed.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

from gtmhub_async import KpiSnapshotRequest, RateLimit, RetryPolicy, SnapshotUpload
from gtmhub_async.limits import LocalLimiter
from gtmhub_async.testing import FakeGtmhub, Faults

DAY = date(2026, 11, 1)

#: The issue's mix: one draw per request; 7% errors of which 5 in 7 are 503s.
FAULTS = Faults(
    error_rate=0.07,
    statuses=(503, 503, 503, 503, 503, 500, 500),
    retry_after=0,
    reset_after_write_rate=0.03,
)


async def test_400_uploads_under_faults_keep_the_rate_and_account_for_every_item() -> None:
    async with FakeGtmhub(seed=13, faults=FAULTS) as fake:
        kpis = [k["id"] for k in fake.add_kpis(20)]
        items = [
            SnapshotUpload(kpis[i % 20], KpiSnapshotRequest(group=DAY, value=float(i)))
            for i in range(400)
        ]
        retry = RetryPolicy(max_attempts=6, backoff_base=0.001, backoff_max=0.005)
        async with fake.client(rate_limit=RateLimit(100), retry=retry, seed=13) as client:
            limiter = client.limiter
            assert isinstance(limiter, LocalLimiter)
            result = await client.kpis.upload_snapshots(items, concurrency=16)
            stats = limiter.stats
        applied = Counter(r.json["value"] for r in fake.requests if r.applied)
        attempts: dict[float, list[str]] = {}
        for r in fake.requests:
            outcome = "dropped" if r.dropped else str(r.status)
            attempts.setdefault(r.json["value"], []).append(outcome)

    statuses = Counter(a for seen in attempts.values() for a in seen)
    assert statuses["503"] >= 10 and statuses["500"] >= 3 and statuses["dropped"] >= 5
    # The limiter: 503s closed the gate for 0 s, and never lowered the rate.
    assert stats.throttled == statuses["503"]
    assert stats.decreases == 0
    assert stats.rate == 100
    # Exact per-item accounting.
    assert result.consumed == 400
    assert result.not_attempted_count == 0
    succeeded = {u.snapshot.value for u in result.succeeded}
    unknown = {i.item.snapshot.value for i in result.unknown}
    failed = {i.item.snapshot.value for i in result.failed}
    assert len(succeeded) == result.succeeded_count
    assert succeeded | unknown | failed == {float(i) for i in range(400)}
    assert not succeeded & unknown and not succeeded & failed and not unknown & failed
    # A 503 is retried; a drop or a 500 after sending leaves the outcome unknown.
    for value, seen in attempts.items():
        assert all(a == "503" for a in seen[:-1]), (value, seen)
    assert unknown == {v for v, seen in attempts.items() if seen[-1] in ("dropped", "500")}
    assert succeeded == {v for v, seen in attempts.items() if seen[-1] == "201"}
    assert failed == {v for v, seen in attempts.items() if seen[-1] == "503"}
    assert all(applied[v] == 1 for v in succeeded)
    assert all(applied[v] == 0 for v in failed)
    assert result.unknown_count == statuses["dropped"] + statuses["500"]
