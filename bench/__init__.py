"""Benchmarks: programs that print figures (`make bench-admission`), never tests."""
