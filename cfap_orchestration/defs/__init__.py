"""Dagster wiring, one folder per domain. Only wiring lives here: logic is in connectors/,
sandbox/, causal/ and warehouse.py."""
