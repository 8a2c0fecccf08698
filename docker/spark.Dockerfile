# Spark standalone image for docker-compose.yaml (spark-master, spark-worker).
# Build context: the repository root, filtered by docker/spark.Dockerfile.dockerignore.
#
# Why not apache/spark:4.2.0-...-python3-ubuntu: in client mode the driver is
# the Airflow container (Python 3.11) and PySpark refuses to run Python workers
# whose minor version differs from the driver's; the official Spark images ship
# Ubuntu's Python (3.10 / 3.12). So this image is Python 3.11 + Java 17 + the
# Spark distribution that the pyspark wheel carries (bin/, jars/), i.e. the very
# same Spark build the Airflow side submits with.
#
# Base images, every one pinned to an exact tag. They were NOT pulled on the
# machine this was written on (no Docker engine there); each tag is a published
# tag of its official repository:
#   python:3.11.14-slim-bookworm         Python 3.11, the project's Python
#   maven:3.9.11-eclipse-temurin-17      build stage only: fetches the jars of include/spark/pom.xml
#   eclipse-temurin:17.0.16_8-jre-jammy  Java 17 runtime (same one as the Airflow image)

FROM maven:3.9.11-eclipse-temurin-17 AS spark-jars
WORKDIR /build
COPY include/spark/pom.xml include/spark/pom.xml
RUN mvn --batch-mode --quiet -f include/spark/pom.xml dependency:copy-dependencies \
        -DexcludeTransitive=true -DoutputDirectory=/opt/fhir/jars \
    && ls -l /opt/fhir/jars

FROM eclipse-temurin:17.0.16_8-jre-jammy AS jre

FROM python:3.11.14-slim-bookworm

# Must equal the pyspark pin in requirements.txt (tests/test_docker_compose.py checks it).
ARG SPARK_VERSION=4.2.0

# curl: healthchecks; procps: Spark's scripts call ps; tini: PID 1 that reaps executors.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl procps tini \
    && rm -rf /var/lib/apt/lists/*

COPY --from=jre /opt/java/openjdk /opt/java/openjdk
ENV JAVA_HOME=/opt/java/openjdk \
    PATH="/opt/java/openjdk/bin:${PATH}" \
    SPARK_HOME=/usr/local/lib/python3.11/site-packages/pyspark \
    PYSPARK_PYTHON=python3 \
    FHIR_SPARK_JARS_DIR=/opt/fhir/jars \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

COPY constraints.txt docker/spark-requirements.txt /tmp/build/
RUN pip install --no-cache-dir "pyspark==${SPARK_VERSION}" \
        -r /tmp/build/spark-requirements.txt -c /tmp/build/constraints.txt \
    && rm -rf /tmp/build \
    && python -c "import pyspark, sys; print('pyspark', pyspark.__version__); sys.exit(pyspark.__version__ != '${SPARK_VERSION}')" \
    && test -f "${SPARK_HOME}/bin/spark-class" && command -v spark-class \
    && java -version

COPY --from=spark-jars /opt/fhir/jars /opt/fhir/jars
# Delta on the executors' classpath (SPARK_HOME/jars), whatever the driver ships.
RUN cp /opt/fhir/jars/*.jar "${SPARK_HOME}/jars/"

# Same uid/gid as the airflow user of the Airflow image (50000:0): the driver
# (Airflow container) and the executors (here) write the same Delta tables on
# the shared lakehouse volume.
RUN useradd --uid 50000 --gid 0 --create-home --home-dir /home/spark --shell /bin/bash spark \
    && mkdir -p /opt/fhir/lakehouse /opt/fhir/landing /opt/spark-work \
    && chown -R 50000:0 /opt/fhir /opt/spark-work \
    && chmod 2775 /opt/fhir/lakehouse /opt/fhir/landing

USER 50000:0
WORKDIR /opt/spark-work
EXPOSE 7077 8080 8081
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["spark-class", "org.apache.spark.deploy.master.Master"]
