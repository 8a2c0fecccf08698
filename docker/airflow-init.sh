#!/usr/bin/env bash
# One-shot first-start tasks of the docker-compose stack (service airflow-init).
# Idempotent: every run after the first only re-checks. Runs before any other
# Airflow command of the stack: the secret files it writes are read by the
# AIRFLOW__..._CMD settings, without which no airflow command starts.
set -euo pipefail

secrets_dir=${AIRFLOW_SECRETS_DIR:-/opt/airflow/secrets}

echo "1/3 Shared Airflow secrets in ${secrets_dir} (generated once, never printed)"
# Scheduler, API server, DAG processor and triggerer must agree on the JWT
# secret (task identity tokens), the API secret key (log server requests) and
# the Fernet key. Each service reads them with AIRFLOW__..._CMD="cat <file>".
python - "${secrets_dir}" <<'PY'
import os
import secrets
import sys

from cryptography.fernet import Fernet

folder = sys.argv[1]
makers = {
    "jwt_secret": lambda: secrets.token_urlsafe(64),
    "api_secret_key": lambda: secrets.token_urlsafe(64),
    "fernet_key": lambda: Fernet.generate_key().decode(),
}
os.umask(0o077)
for name, make in makers.items():
    path = os.path.join(folder, name)
    if os.path.exists(path) and os.path.getsize(path) > 0:
        print(f"  {name}: kept")
        continue
    with open(path, "w") as handle:
        handle.write(make())  # no trailing newline: the _CMD output is used verbatim
    print(f"  {name}: created")
PY

echo "2/3 Airflow metadata database"
airflow db migrate

echo "3/3 Azurite landing container 'fhir-landing' (for FHIR_LANDING_URI=wasb://fhir-landing@...)"
python - <<'PY'
from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

WasbHook(wasb_conn_id="wasb_default").create_container("fhir-landing")
PY

airflow version
echo "airflow-init done"
