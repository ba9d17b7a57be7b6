"""The S3-trigger Lambda: manifest uploads start training (functions/core/trigger.py)."""
