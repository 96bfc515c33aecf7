"""Benchmarks for streaming at scale: `python -m bench` runs them all and prints one table."""
