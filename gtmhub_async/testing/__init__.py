"""Test helpers: a stateful fake Gtmhub KPI API server and its pytest fixtures.

``FakeGtmhub`` serves the 11 KPI endpoints from memory on 127.0.0.1 with
authentication, validation, a server-side rate limit, scripted or seeded faults
and a request log. ``gtmhub_async.testing.plugin`` holds the pytest fixtures.
"""

from __future__ import annotations

from gtmhub_async.testing.fake import FakeGtmhub, error_body
from gtmhub_async.testing.faults import Fault, FaultKind, Faults
from gtmhub_async.testing.log import RequestRecord
from gtmhub_async.testing.quirks import Quirks

__all__ = ["Fault", "FaultKind", "FakeGtmhub", "Faults", "Quirks", "RequestRecord", "error_body"]
