"""Metric providers against real local processes."""
