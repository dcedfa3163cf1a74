"""Helpers to build test media (clips, stills) offline; used by the tests, benchmarks and the demo."""
