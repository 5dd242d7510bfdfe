"""Synthetic UK plates and footage for tests, training and benchmarks."""
