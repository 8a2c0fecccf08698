"""The custom OpenLineage facet spark_jobs.lineage adds (imported only when lineage is on:
it needs openlineage-python)."""

from __future__ import annotations

import attr
from openlineage.client.facet_v2 import DatasetFacet


@attr.define
class MlflowModelVersionDatasetFacet(DatasetFacet):
    """A registered model version and the MLflow run that logged it."""

    name: str
    version: str
    runId: str  # noqa: N815 - OpenLineage facets are camelCase JSON

    @staticmethod
    def _get_schema() -> str:
        return "urn:fhir-lakehouse:facets:MlflowModelVersionDatasetFacet:1-0-0"
