"""The risk models: what they learn (labels), which inputs each declares
(include/ml/models.json, read by specs), their datasets, the candidate pipelines and
metrics, MLflow tracking and the registry's champion, training, batch scoring, the
stale-champion pages and the Azure ML deployment. Gold's feature blocks come from
spark_jobs.gold as a library; no job module is imported here."""
