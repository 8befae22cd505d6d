"""Training layer: the rule-based baseline, LightGBM models, evaluation and the MLflow registry."""
