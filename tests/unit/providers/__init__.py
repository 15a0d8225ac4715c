"""Unit tests of the metric providers."""
