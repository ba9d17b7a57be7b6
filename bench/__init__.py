"""Benchmarks: run as scripts (python bench/<name>.py), never from make test."""
