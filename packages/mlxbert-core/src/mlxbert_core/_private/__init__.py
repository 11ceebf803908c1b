"""Internals of mlxbert-core; no stable API."""
