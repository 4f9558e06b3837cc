"""Batch scoring: predictions with per-row lineage and reasons."""
