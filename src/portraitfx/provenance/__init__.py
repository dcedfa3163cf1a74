"""Provenance (temporary)."""
