"""Test helpers shared by integration and e2e tests."""
