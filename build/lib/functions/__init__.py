"""Custom Classifier Lambda functions: the API, the S3 trigger, their domain and adapters."""
