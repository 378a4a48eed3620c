"""Benchmarks of gtmhub_async against local servers: ``python -m benchmarks`` (see harness)."""
