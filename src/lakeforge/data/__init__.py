"""Datasets: sources, pandera validation built from conf/, ingest into raw.<name> with quarantine."""

from lakeforge.data.ingest import IngestReport, ingest, ingest_all, ingest_dataset

__all__ = ["IngestReport", "ingest", "ingest_all", "ingest_dataset"]
