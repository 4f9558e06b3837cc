# The serving image: `lakeforge serve` of a project's champion over HTTP (docs/serving.md).
# Not built by the tests (no Docker engine on the build machine); build and run it with:
#   docker build -t lakeforge-serve .
#   docker run -p 8000:8000 \
#     -v "$PWD/lake:/app/lake" -v "$PWD/online:/app/online" \
#     -v "$PWD/mlflow.db:/app/mlflow.db" -v "$PWD/mlartifacts:/app/mlartifacts" lakeforge-serve
# The volumes are the project's lake (the online log is appended to predictions.<model>__online),
# the online store `lakeforge materialize` fills, and the MLflow registry (or pass
# `tracking=server` with MLFLOW_TRACKING_URI pointing at a tracking server instead).
# Serving needs no JVM: no Java in the image.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 LAKEFORGE_CONF=/app/conf
WORKDIR /app

# The pinned tree first (a layer that changes only with the lock), then lakeforge itself.
COPY requirements.lock pyproject.toml README.md ./
RUN pip install -r requirements.lock
COPY src ./src
RUN pip install --no-deps .

# The project: its conf/ (pipeline, model, online store path) and feature transforms.
COPY conf ./conf
COPY features ./features

RUN useradd --create-home --uid 10001 lakeforge && chown -R lakeforge /app
USER lakeforge
EXPOSE 8000
# Inside a container the API must listen beyond loopback; the host decides what reaches it.
CMD ["lakeforge", "serve", "flight_delay", "--host", "0.0.0.0", "--port", "8000"]
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
