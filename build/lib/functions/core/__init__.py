"""The domain: settings, errors, models, ports and use cases. No AWS, MLflow or web imports."""
