"""Benchmarks: throughput figures against a baseline measured in the same run.

Run with ``make bench`` or ``python -m bench [--quick] [section]``. Benchmarks report; they
do not fail: the exit code is 0 whether a target is met or not, unless something crashed.
"""
