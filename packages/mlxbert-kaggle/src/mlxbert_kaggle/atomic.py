"""Atomic writes (the task-model layer's): an interrupted run never leaves a half-written
output, and what is written keeps the umask's modes."""

from mlxbert_glue.task_model import atomic_dir, atomic_path, read_json, write_json, write_text

__all__ = ["atomic_dir", "atomic_path", "read_json", "write_json", "write_text"]
