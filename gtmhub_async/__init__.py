"""Asyncio SDK for the Gtmhub (Quantive Results) KPI API."""
