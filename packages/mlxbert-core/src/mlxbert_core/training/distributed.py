"""Data-parallel helpers over ``mx.distributed``.

Every process runs the same script (``mlx.launch`` starts them and sets the rank):

* CPUs, one machine or several: ``mlx.launch --backend ring -n 2 train.py`` (or
  ``--hosts ip1,ip2``); ``--backend mpi`` works where MPI is installed.
* NVIDIA GPUs: ``mlx.launch --backend nccl -n 4 train.py`` (one process per GPU); keep NVLink
  multicast off with ``NCCL_NVLS_ENABLE=0``.

The :class:`~mlxbert_core.training.Trainer` then (1) makes rank 0's initial weights everyone's,
(2) averages gradients with a few large ``all_sum`` calls (``nn.utils.average_gradients``
concatenates the gradient tree into ~32 MiB buckets), (3) reports the loss averaged over
ranks (on an update step the loss travels in the gradients' last bucket: a separate
one-number all-reduce at every step cost up to a third of a 4-GPU step), and (4) lets only
rank 0 write checkpoints and progress bars. Shard the data with
``batch_iterator(..., num_shards=world_size(), shard_index=rank())`` and use the same seed
everywhere so all ranks agree on the data order.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_map

_GROUP: mx.distributed.Group | None = None


def init(backend: str = "any", *, strict: bool = False) -> mx.distributed.Group:
    """The global process group (a group of size 1 when not launched distributed)."""
    global _GROUP
    if _GROUP is None:
        _GROUP = mx.distributed.init(strict=strict, backend=backend)
    return _GROUP


def world_size(group: mx.distributed.Group | None = None) -> int:
    return (group or init()).size()


def rank(group: mx.distributed.Group | None = None) -> int:
    return (group or init()).rank()


def is_main_process(group: mx.distributed.Group | None = None) -> bool:
    """True on rank 0: the process that writes files and logs."""
    return rank(group) == 0


def average_gradients(
    grads: Any,
    group: mx.distributed.Group,
    *,
    dtype: mx.Dtype | None = None,
    stream: mx.Stream | None = None,
) -> Any:
    """Mean of ``grads`` over the group, bucketed into few large all-reduces.

    ``dtype`` is the dtype the gradients travel in (cast back afterwards); ``stream`` the
    stream the all-reduces run on (default: the backend's).
    """
    if group.size() == 1:
        return grads
    sent = grads if dtype is None else tree_map(lambda g: g.astype(dtype), grads)
    mean = nn.utils.average_gradients(sent, group=group, communication_stream=stream)
    return mean if dtype is None else tree_map(lambda m, g: m.astype(g.dtype), mean, grads)


def mean_over_ranks(value: mx.array, group: mx.distributed.Group) -> mx.array:
    if group.size() == 1:
        return value
    return mx.distributed.all_sum(value, group=group) / group.size()


def broadcast_from_main(tree: Any, group: mx.distributed.Group) -> Any:
    """Every rank gets rank 0's arrays (an all_sum where other ranks contribute zeros)."""
    if group.size() == 1:
        return tree
    is_main = group.rank() == 0

    def share(x: mx.array) -> mx.array:
        contribution = x if is_main else mx.zeros_like(x)
        return mx.distributed.all_sum(contribution, group=group).astype(x.dtype)

    return tree_map(share, tree)


def barrier(group: mx.distributed.Group | None = None) -> None:
    """Wait until every rank reaches this point."""
    group = group or init()
    if group.size() > 1:
        mx.eval(mx.distributed.all_sum(mx.array(1.0), group=group))


def launch_command(
    script: str,
    num_processes: int,
    *,
    backend: str = "ring",
    hosts: str | None = None,
    starting_port: int | None = None,
    nccl_port: int | None = None,
    env: dict[str, str] | None = None,
    python: str | None = None,
    script_args: list[str] | None = None,
) -> list[str]:
    """The ``mlx.launch`` command line that runs ``script`` on ``num_processes`` ranks.

    Uses the ``mlx.launch`` program next to the Python interpreter (it ships with MLX),
    e.g. ``mlx.launch --backend ring -n 2 --python /usr/bin/python3 train.py``. With
    ``backend="nccl"`` each local rank sees one GPU (``mlx.launch`` sets
    ``CUDA_VISIBLE_DEVICES``); ``env`` entries are exported on every rank.
    """
    import shutil
    import sys
    from pathlib import Path

    python = python or sys.executable
    launcher = Path(python).parent / "mlx.launch"
    if launcher.exists():
        argv = [str(launcher)]
    elif shutil.which("mlx.launch"):
        argv = [shutil.which("mlx.launch")]
    else:  # the module behind the console script
        argv = [python, "-c", "from mlx._distributed_utils.launch import main; main()"]
    argv += ["--backend", backend, "--python", python]
    if hosts:
        argv += ["--hosts", hosts]
    if num_processes:
        argv += ["-n", str(num_processes)]
    if starting_port is not None:
        argv += ["--starting-port", str(starting_port)]
    if nccl_port is not None:
        argv += ["--nccl-port", str(nccl_port)]
    for key, value in (env or {}).items():
        argv += ["--env", f"{key}={value}"]
    return [*argv, script, *(script_args or [])]
