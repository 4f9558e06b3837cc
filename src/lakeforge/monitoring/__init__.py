"""Monitoring: drift, data quality, performance, alerts and the report (docs/monitoring.md)."""
