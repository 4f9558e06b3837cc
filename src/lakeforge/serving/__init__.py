"""Online: the online feature store (`lakeforge materialize`) and the HTTP API (`lakeforge serve`).

Above scoring in the layers: serving scores with batch scoring's own `Scorer`, so online and batch
answers agree by construction (docs/serving.md).
"""
