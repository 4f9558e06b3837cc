"""The only package that imports MLflow: the store, lineage, models and the registry."""
