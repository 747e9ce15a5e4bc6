"""Benchmarks: throughput figures, printed, never pass/fail (see README.md)."""
