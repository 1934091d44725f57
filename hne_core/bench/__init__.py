"""Benchmarks that print their figures: ``python -m hne_core.bench train`` and ``python -m hne_core.bench attack``.

Speed targets live here, not in timed tests: the machines are shared and noisy, so each benchmark measures
its alternatives side by side in one run and prints ratios.
"""
