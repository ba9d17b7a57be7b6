"""Adapters: the ports implemented with boto3, MLflow and subprocesses."""
