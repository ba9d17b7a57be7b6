"""Training job: labelled documents in, an evaluated and registered MLflow model out."""
