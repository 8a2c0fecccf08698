"""The data-quality gate of a batch run: thresholds declared in include/config/quality.yaml."""
