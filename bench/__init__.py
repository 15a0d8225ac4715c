"""Benchmark programs: each runs against real processes and rewrites its section of docs/benchmarks.md.

Run them from the repository root (``.venv/bin/python -m bench.revert``), so that ``tests`` (the
e2e stack they reuse) is importable.
"""
