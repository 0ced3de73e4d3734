"""Benchmarks (the target home of every ``selflearn bench`` command)."""
