"""Training: training sets through the features code path, fitting, tracking, the promotion gate."""
