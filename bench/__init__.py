"""lakeforge benchmarks: `.venv/bin/python -m bench [name ...]` runs bench/bench_*.py."""
