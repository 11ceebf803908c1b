"""Integration tests span packages; import mlxbert_core first so its OpenBLAS preload runs
before anything imports mlx.core (otherwise MLX binds the slow reference BLAS)."""

import mlxbert_core  # noqa: F401  (import for its side effect)
