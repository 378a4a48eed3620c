"""The demo's faults: random ones all along, and two throttles scheduled by progress."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gtmhub_async.testing import FakeGtmhub, Faults

__all__ = ["DemoFaults"]


class DemoFaults:
    """Drive the fake's faults during the demo: random ones, and two scheduled throttles.

    All along: 503s without Retry-After (a POST that gets one has an unknown outcome,
    since the client cannot know that the fake refused it before applying it) and
    connections reset after a write was applied. At a fifth and three fifths of the
    upload: one 429 and one 503 with Retry-After. They are scheduled rather than
    random because each closes the client's shared gate for a second and lowers its
    rate to what the server accepted in the last window: two throttles less than a
    window apart, or one while the client is still ramping up, would make it hold a
    much lower rate for the rest of the run (the limiter takes that count for the
    server's ceiling), and the demo would take minutes instead of seconds.
    """

    def __init__(self, fake: FakeGtmhub, total: int, *, enabled: bool) -> None:
        self.fake = fake
        self.enabled = enabled
        self.schedule = [(total // 5, 429), (total * 3 // 5, 503)] if enabled else []
        self.pending = False
        #: Status -> how many were scripted with Retry-After.
        self.throttles: dict[int, int] = {}
        if enabled:
            fake.set_faults(self._random())

    @staticmethod
    def _random() -> Faults:
        from gtmhub_async.testing import Faults

        return Faults(
            error_rate=0.002, statuses=(503,), retry_after=None, reset_after_write_rate=0.0005
        )

    @staticmethod
    def _throttling() -> Faults:
        from gtmhub_async.testing import Faults

        return Faults(retry_after=1, reset_after_write_rate=0.0005)

    def on_progress(self, done: int) -> None:
        """Restore the random faults after a throttle, or script the next one when due."""
        if self.pending and self.fake.scripted == 0:
            self.fake.set_faults(self._random())
            self.pending = False
        if not self.pending and self.schedule and done >= self.schedule[0][0]:
            _, status = self.schedule.pop(0)
            # A scripted status carries Retry-After only while the faults say so.
            self.fake.set_faults(self._throttling())
            self.fake.script([status])
            self.pending = True
            self.throttles[status] = self.throttles.get(status, 0) + 1
