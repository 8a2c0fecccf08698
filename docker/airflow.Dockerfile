# Airflow image for docker-compose.yaml (airflow-init, -apiserver, -scheduler,
# -dag-processor, -triggerer). Build context: the repository root; the only
# files sent to the builder are the ones docker/airflow.Dockerfile.dockerignore
# lets through (never .venv/, node_modules/ or .local/, which holds the PHI key).
#
# Base images, every one pinned to an exact tag. They were NOT pulled on the
# machine this was written on (no Docker engine there); each tag is a published
# tag of its official repository:
#   apache/airflow:3.3.2-python3.11     official Airflow image; 3.3.2 == the apache-airflow pin
#                                       in requirements.txt, Python 3.11 == the project's Python
#   maven:3.9.11-eclipse-temurin-17     build stage only: fetches the jars of include/spark/pom.xml
#   eclipse-temurin:17.0.16_8-jre-jammy source of the Java 17 runtime spark-submit needs. Copying
#                                       /opt/java/openjdk works whatever Debian release the Airflow
#                                       base uses (apt's openjdk-17 is gone from Debian trixie).

# --- 1. The Spark jars (Delta Lake), exactly as `make setup` fetches them --------
FROM maven:3.9.11-eclipse-temurin-17 AS spark-jars
WORKDIR /build
COPY include/spark/pom.xml include/spark/pom.xml
RUN mvn --batch-mode --quiet -f include/spark/pom.xml dependency:copy-dependencies \
        -DexcludeTransitive=true -DoutputDirectory=/opt/fhir/jars \
    && ls -l /opt/fhir/jars

# --- 2. A Java 17 runtime -------------------------------------------------------
FROM eclipse-temurin:17.0.16_8-jre-jammy AS jre

# --- 3. Airflow + the project's Python dependencies ------------------------------
FROM apache/airflow:3.3.2-python3.11

USER root
COPY --from=jre /opt/java/openjdk /opt/java/openjdk
COPY --from=spark-jars /opt/fhir/jars /opt/fhir/jars
COPY docker/airflow-init.sh /opt/fhir/bin/airflow-init.sh
# Mount points of the named volumes, owned by the airflow user (uid 50000, gid 0)
# so that a fresh volume inherits that ownership. The Spark image creates the
# same directories for the same uid: driver (here) and executors (spark-worker)
# write the same Delta tables.
RUN mkdir -p /opt/fhir/lakehouse /opt/fhir/landing /opt/airflow/secrets \
    && chown -R airflow:0 /opt/fhir /opt/airflow/secrets \
    && chmod 2775 /opt/fhir/lakehouse /opt/fhir/landing \
    && chmod 0700 /opt/airflow/secrets \
    && chmod 0755 /opt/fhir/bin/airflow-init.sh

ENV JAVA_HOME=/opt/java/openjdk \
    PATH="/opt/java/openjdk/bin:${PATH}" \
    FHIR_SPARK_JARS_DIR=/opt/fhir/jars \
    PYSPARK_PYTHON=python3

# The official image's recommended pattern: install as the airflow user, with
# every package (Airflow included) pinned by the project's lock file.
USER airflow
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/fhir/build/
RUN pip install --no-cache-dir -r /opt/fhir/build/requirements.txt -c /opt/fhir/build/constraints.txt \
    && python -c "import importlib.metadata as m; v = {p: m.version(p) for p in ('apache-airflow', 'pyspark', 'delta-spark', 'mlflow')}; print(v); assert v['apache-airflow'] == '3.3.2', v" \
    && java -version \
    && spark-submit --version

# Delta on Spark's own classpath too (SPARK_HOME/jars of the pyspark wheel), as
# on Databricks: a spark-submit driver started here finds the Delta classes even
# when the submitting code passes no --jars (spark.jars set from inside an
# already running driver JVM reaches the executors only). Same jars, same
# versions as FHIR_SPARK_JARS_DIR, so a --jars of them is harmless.
RUN cp /opt/fhir/jars/*.jar "$(python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')/jars/"
