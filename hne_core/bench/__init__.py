"""Benchmarks that print their figures: ``python -m hne_core.bench train`` (and later ``attack``).

Speed targets live here, not in timed tests: the machines are shared and noisy, so each benchmark measures
its alternatives side by side in one run and prints ratios.
"""
