"""lakeforge: a declarative, config-driven batch ML platform.

Hydra YAML in ``conf/`` describes datasets, features, models, schedules and
monitors; Spark jobs turn it into Delta tables with MLflow lineage.
"""

__version__ = "0.1.0"
