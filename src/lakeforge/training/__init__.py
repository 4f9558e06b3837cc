"""Training: training sets through the features code path, fitting, tracking, the promotion gate."""

import os

# LightGBM's OpenMP threads spin while waiting by default; on a small, shared machine that made a
# 2-thread fit ~10x slower than 1 thread (docs/design/training.md). Set before libgomp loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
