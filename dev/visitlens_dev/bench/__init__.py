"""Benchmarks (`make bench`): speed and accuracy targets live here, never in timed unit tests."""
