# MLflow tracking server for docker-compose.yaml (service mlflow): PostgreSQL
# backend store (database "mlflow" on the postgres service) and proxied
# artifact serving (--serve-artifacts) to a named volume.
# Build context: the repository root, filtered by docker/mlflow.Dockerfile.dockerignore.
#
# Built rather than taken from ghcr.io/mlflow/mlflow: that image has no
# PostgreSQL driver. Here mlflow and psycopg2-binary come at the versions of the
# project's lock (constraints.txt), so server and clients are the same release.
#
# Base image pinned to an exact tag; NOT pulled on the machine this was written
# on (no Docker engine there); it is a published tag of the official repository:
#   python:3.11.14-slim-bookworm

FROM python:3.11.14-slim-bookworm

# Must equal the mlflow pin in requirements.txt (tests/test_docker_compose.py checks it).
ARG MLFLOW_VERSION=3.17.2

COPY constraints.txt /tmp/build/constraints.txt
RUN pip install --no-cache-dir "mlflow==${MLFLOW_VERSION}" psycopg2-binary \
        -c /tmp/build/constraints.txt \
    && rm -rf /tmp/build \
    && python -c "import mlflow, psycopg2, sys; print('mlflow', mlflow.__version__); sys.exit(mlflow.__version__ != '${MLFLOW_VERSION}')"

RUN useradd --uid 50001 --gid 0 --create-home --home-dir /home/mlflow mlflow \
    && mkdir -p /mlflow/artifacts \
    && chown -R 50001:0 /mlflow

ENV PYTHONUNBUFFERED=1
USER 50001:0
WORKDIR /mlflow
EXPOSE 5000
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
