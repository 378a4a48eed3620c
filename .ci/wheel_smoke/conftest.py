"""Load the SDK's fixtures the documented way (they are opt-in)."""

pytest_plugins = ["gtmhub_async.testing.plugin"]
