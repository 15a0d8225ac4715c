"""Checks that gate phases: Verify's probes (Stage's tests and load tests come with issue #6)."""
