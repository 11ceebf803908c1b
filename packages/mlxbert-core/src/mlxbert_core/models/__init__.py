"""Encoder implementations shipped with mlxbert-core."""
