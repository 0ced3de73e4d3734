"""Benchmarks: each times one part of selflearn against a baseline measured in the same run."""
