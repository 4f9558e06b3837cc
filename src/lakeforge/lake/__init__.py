"""The lake: Spark sessions, Delta tables (read, write, commit), the catalog and SQL."""
