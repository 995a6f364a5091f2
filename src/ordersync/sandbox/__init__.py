"""Runnable sandbox shops, faithful to the API documents, for newcomers, tests and benchmarks."""
