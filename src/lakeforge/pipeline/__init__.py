"""Step graph, plan and runner; DVC and Airflow generation build on it."""
