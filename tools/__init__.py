"""Developer tools that are not part of the pipeline (e.g. the synthetic data generator)."""
