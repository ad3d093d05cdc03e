"""Throughput measurements, run as `python -m benchmarks.<name>`."""
