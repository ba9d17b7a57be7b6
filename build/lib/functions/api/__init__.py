"""The HTTP API (FastAPI), wrapped for Lambda by Mangum in handler.py."""
