"""The training engine: one compiled step for forward, backward, accumulation, clipping,
cross-process averaging and the AdamW update.

The step follows MLX's standard pattern for compiled training: the functions below read and
write the model's parameters, the optimizer state and the random state (dropout) as *captured
state* (``mx.compile(fn, inputs=state, outputs=state)``), and take only the batch and the
gradient accumulator as arguments. ``mx.compile`` traces each function once per distinct set
of input shapes and caches the result, so a handful of padded lengths (see
:mod:`mlxbert_core.training.data`) costs a handful of compilations.

Gradient accumulation: the gradients of ``grad_accum_steps`` micro-batches are summed in an
accumulator and divided by their count at the update, so k micro-batches of size b give the
update of one batch of size k*b (for a mean-reduced loss and equal micro-batch sizes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from ..dtypes import parse_dtype
from . import checkpointing, distributed, overlap
from .clipping import clip_grad_norm, global_norm
from .config import TrainingConfig
from .grad_checkpoint import enable_gradient_checkpointing, find_layers
from .optimizer import build_optimizer
from .precision import DynamicLossScale, all_finite, cast_floating
from .schedules import build_schedule

LossFn = Callable[[nn.Module, dict[str, mx.array]], mx.array]


def assign_tree(target: Any, source: Any) -> None:
    """Write ``source``'s leaves into the containers of ``target`` in place (so references
    held by compiled functions keep seeing the live state)."""
    items = source.items() if isinstance(source, dict) else enumerate(source)
    for key, value in items:
        if isinstance(value, (dict, list)) and isinstance(target[key], (dict, list)):
            assign_tree(target[key], value)
        else:
            target[key] = value


class Trainer:
    """Trains ``model`` on ``loss_fn(model, batch) -> scalar`` with AdamW.

    Args:
        model: any ``mlx.nn.Module``; only its trainable parameters are updated (freeze
            parts with ``model.freeze(...)`` before creating the trainer). Each step puts it
            in training mode (dropout on); call ``model.eval()`` to evaluate in between.
        loss_fn: ``(model, batch) -> scalar loss`` (mean over the batch). ``batch`` is a dict
            of ``mx.array``; non-array entries of a batch are dropped before the call.
        config: :class:`TrainingConfig`.
        total_steps: number of optimizer updates of the whole run (needed by the linear and
            cosine schedules): ``config.optimizer_steps(len(batches))``.
        optimizer: replace the default AdamW (its own schedule then applies).
        group: ``mx.distributed`` group; default: the global group (size 1 unless launched
            with ``mlx.launch``).
        sync_initial_weights: with several processes, copy rank 0's weights to all ranks.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        config: TrainingConfig | None = None,
        total_steps: int | None = None,
        *,
        optimizer: optim.Optimizer | None = None,
        group: mx.distributed.Group | None = None,
        sync_initial_weights: bool = True,
    ):
        self.model = model
        self.loss_fn = loss_fn
        self.config = config = config or TrainingConfig()
        self.total_steps = total_steps
        self.group = group or distributed.init()
        self.world_size = self.group.size()
        self.rank = self.group.rank()
        self.compute_dtype = parse_dtype(config.compute_dtype)
        self._reduce_dtype = (
            parse_dtype(config.grad_reduce_dtype) if config.grad_reduce_dtype else None
        )
        self._comm_stream = (
            mx.new_stream(mx.default_device())
            if config.communication_stream and self.world_size > 1
            else None
        )
        if not tree_flatten(model.trainable_parameters()):
            raise ValueError("The model has no trainable parameters (is everything frozen?)")

        mx.random.seed(config.seed)
        if config.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        self._reducer: overlap.BackwardReducer | None = None
        self._reduced_paths: set[str] = set()
        if config.overlap_grad_reduce and self.world_size > 1:
            if config.grad_accum_steps != 1 or config.gradient_checkpointing:
                raise ValueError(
                    "overlap_grad_reduce needs grad_accum_steps=1 and no gradient "
                    "checkpointing (the layers' gradients are all-reduced as they are computed)"
                )
            self._reducer = overlap.BackwardReducer(self.group, self._comm_stream)
            self._reduced_paths = overlap.enable_overlapped_reduction(
                model, find_layers(model), self._reducer
            )
        self.schedule = None  # a caller's optimizer brings its own learning rate
        if optimizer is None:
            self.schedule = build_schedule(
                config.learning_rate,
                total_steps,
                warmup_steps=config.resolved_warmup_steps(total_steps or 0),
                kind=config.schedule,
                min_lr_ratio=config.min_lr_ratio,
            )
            optimizer = build_optimizer(config, self.schedule)
        self.optimizer = optimizer
        self.optimizer.init(model.trainable_parameters())
        self.loss_scale = DynamicLossScale() if self.compute_dtype == mx.float16 else None
        if self.world_size > 1 and sync_initial_weights:
            model.update(distributed.broadcast_from_main(model.trainable_parameters(), self.group))
            mx.eval(model.parameters())

        self.micro_step = 0  # micro-batches seen
        self.optimizer_step = 0  # updates applied
        self._accum: Any = None  # summed gradients of the current accumulation window
        self._accum_count = 0
        self.last_grad_norm: mx.array | None = None
        self._build_step_functions()

    # ------------------------------------------------------------------ the step itself
    @property
    def _state(self) -> list:
        state = [self.model.state, self.optimizer.state, mx.random.state]
        if self.loss_scale is not None:
            state.append(self.loss_scale.state)
        return state

    def _build_step_functions(self) -> None:
        """(Re)create the step functions, compiled over the *current* state containers."""
        self._functions: dict[tuple[bool, bool], Callable] = {}
        state = self._state
        for has_accum in (False, True):
            for update in (False, True):
                fn = partial(self._step_impl, has_accum=has_accum, update=update)
                if self.config.compile:
                    fn = mx.compile(fn, inputs=state, outputs=state)
                self._functions[(has_accum, update)] = fn

    def _loss_and_grads(self, batch: dict[str, mx.array]) -> tuple[mx.array, Any]:
        model = self.model
        reduced = self.compute_dtype != mx.float32
        master = model.trainable_parameters()
        everything = model.parameters() if reduced else None
        if reduced:  # frozen weights compute in the reduced dtype too
            model.update(cast_floating(everything, self.compute_dtype))
        scale = self.loss_scale.scale if self.loss_scale is not None else None

        def objective(params):
            model.update(cast_floating(params, self.compute_dtype) if reduced else params)
            loss = self.loss_fn(model, batch).astype(mx.float32)
            return (loss * scale if scale is not None else loss), loss

        (_, loss), grads = mx.value_and_grad(objective)(master)
        # The forward pass left traced (and possibly cast) weights in the model: put the
        # float32 master weights back.
        model.update(everything if reduced else master)
        return loss, grads

    def _step_impl(self, batch, accum, count, *, has_accum: bool, update: bool):
        # The layers all-reduce their own gradients in the backward pass only when this
        # micro-batch's gradients are the whole update (nothing accumulated before).
        in_backward = self._reducer is not None and update and not has_accum
        if self._reducer is not None:
            self._reducer.start(active=in_backward)
        loss, grads = self._loss_and_grads(batch)
        if self._reducer is not None:  # evaluation forwards must not be hooked
            self._reducer.start(active=False)
        if has_accum:
            grads = tree_map(mx.add, accum, grads)
        if not update:
            # Every rank reports the loss of the global batch: one scalar all-reduce.
            return distributed.mean_over_ranks(loss, self.group), grads, mx.array(0.0)
        if has_accum:  # without an accumulator the count is 1: no pass over the gradients
            grads = tree_map(lambda g: g / count, grads)
        if in_backward:
            done, rest = overlap.split_reduced(grads, self._reduced_paths)
            rest, loss = self._average(tree_unflatten(rest), loss)
            grads = tree_unflatten(done + tree_flatten(rest))
        else:
            grads, loss = self._average(grads, loss)
        if self.loss_scale is not None:
            grads = tree_map(lambda g: g / self.loss_scale.scale, grads)
            finite = all_finite(grads)
            grads = tree_map(lambda g: mx.where(finite, g, mx.zeros_like(g)), grads)
        max_norm = self.config.max_grad_norm
        if max_norm:
            grads, norm = clip_grad_norm(grads, max_norm)
        else:
            norm = global_norm(grads)
        if self.loss_scale is None:
            self.optimizer.update(self.model, grads)
        else:
            self._guarded_update(grads, finite)
        return loss, None, norm

    def _average(self, grads: Any, loss: mx.array) -> tuple[Any, mx.array]:
        """The gradients and the loss, each averaged over the ranks.

        The loss travels in the gradients' all-reduce rather than in one of its own: a
        separate one-number all-reduce per step is a synchronisation of its own, which cost
        more than the gradients' traffic on multi-GPU hosts (docs/BENCHMARKS.md, Data
        parallel). Gradients sent in a reduced dtype keep the separate all-reduce, so that the
        loss stays float32.
        """
        if self.world_size == 1:
            return grads, loss
        float32_traffic = self._reduce_dtype is None or self._reduce_dtype == mx.float32
        send_loss_along = float32_traffic and all(
            g.dtype == loss.dtype for _, g in tree_flatten(grads)
        )
        if not send_loss_along:
            mean = distributed.average_gradients(
                grads, self.group, dtype=self._reduce_dtype, stream=self._comm_stream
            )
            return mean, distributed.mean_over_ranks(loss, self.group)
        both = distributed.average_gradients(
            {"grads": grads, "loss": loss.reshape(1)},
            self.group,
            dtype=self._reduce_dtype,
            stream=self._comm_stream,
        )
        return both["grads"], both["loss"][0]

    def _guarded_update(self, grads: Any, finite: mx.array) -> None:
        """float16: apply the update only when the gradients were finite."""
        old_params = self.model.trainable_parameters()
        old_state = tree_map(lambda x: x, self.optimizer.state)
        self.optimizer.update(self.model, grads)
        keep = partial(lambda new, old: mx.where(finite, new, old))
        self.model.update(tree_map(keep, self.model.trainable_parameters(), old_params))
        assign_tree(self.optimizer.state, tree_map(keep, self.optimizer.state, old_state))
        self.loss_scale.update(finite)

    # ------------------------------------------------------------------ public API
    def step(self, batch: Mapping[str, Any], *, update: bool | None = None) -> mx.array:
        """Train on one micro-batch; update every ``grad_accum_steps`` calls.

        ``update=True`` forces the update now (with the gradients accumulated so far, e.g. at
        the end of an epoch); ``False`` only accumulates. Returns the micro-batch loss as a
        0-d ``mx.array`` (``float(loss)`` reads it), averaged over processes when data
        parallel.
        """
        if not self.model.training:  # e.g. after an evaluation; dropout must be on
            self.model.train()
        arrays = {k: v for k, v in batch.items() if isinstance(v, mx.array)}
        if "input_ids" in batch and "input_ids" not in arrays:
            raise TypeError("batch['input_ids'] must be an mx.array (use batch_iterator)")
        if update is None:
            update = self._accum_count + 1 >= self.config.grad_accum_steps
        has_accum = self._accum is not None
        fn = self._functions[(has_accum, update)]
        count = mx.array(float(self._accum_count + 1))
        loss, accum, norm = fn(arrays, self._accum if has_accum else None, count)
        self.micro_step += 1
        if update:
            self._accum, self._accum_count = None, 0
            self.optimizer_step += 1
            self.last_grad_norm = norm
        else:
            self._accum, self._accum_count = accum, self._accum_count + 1
        # Schedule the work now and return while it runs (the next batch is prepared in the
        # meantime); reading the loss waits for it.
        mx.async_eval(self._state, loss, self._accum)
        return loss

    @property
    def learning_rate(self) -> float:
        """The learning rate the next update will use."""
        if self.schedule is None:
            return float(self.optimizer.learning_rate)
        return float(self.schedule(mx.array(self.optimizer_step)))

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0

    def train_epoch(
        self,
        batches: Iterable[Mapping[str, Any]],
        progress: bool = True,
        *,
        desc: str = "train",
        on_step: Callable[[int, mx.array], None] | None = None,
    ) -> dict[str, float]:
        """One pass over ``batches``; a partial accumulation window is applied at the end.

        ``progress`` shows a tqdm bar; ``on_step(step, loss)`` is called after every
        micro-batch instead, for callers with their own display (``loss`` is the step's
        unevaluated loss: reading it waits for the step).

        Returns ``loss`` (mean micro-batch loss), ``steps`` (micro-batches), ``updates``,
        ``seconds``, ``samples_per_s`` (all processes together), ``tokens_per_s`` (padded)
        and ``learning_rate`` (after the epoch).
        """
        total = len(batches) if hasattr(batches, "__len__") else None
        bar = None
        if progress and on_step is None and self.is_main_process:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc=desc, unit="batch", dynamic_ncols=True)
        losses: list[mx.array] = []
        samples = tokens = 0
        updates_before = self.optimizer_step
        start = time.perf_counter()
        iterator = iter(batches)
        upcoming = next(iterator, None)
        while upcoming is not None:
            batch, upcoming = upcoming, next(iterator, None)
            # The last batch of the epoch closes a partial accumulation window.
            force = True if upcoming is None else None
            losses.append(self.step(batch, update=force))
            shape = batch["input_ids"].shape
            samples += shape[0]
            tokens += shape[0] * shape[1]
            if on_step is not None:
                on_step(len(losses), losses[-1])
            if bar is not None:
                bar.update(1)
                if len(losses) % self.config.log_every == 0:
                    bar.set_postfix(loss=f"{float(losses[-1]):.4f}", lr=f"{self.learning_rate:.2e}")
        mean_loss = mx.mean(mx.stack(losses)) if losses else mx.array(float("nan"))
        mx.eval(mean_loss, self._state)
        seconds = time.perf_counter() - start
        if bar is not None:
            bar.set_postfix(loss=f"{float(mean_loss):.4f}")
            bar.close()
        return {
            "loss": float(mean_loss),
            "steps": len(losses),
            "updates": self.optimizer_step - updates_before,
            "seconds": seconds,
            "samples_per_s": samples * self.world_size / seconds if seconds > 0 else 0.0,
            "tokens_per_s": tokens * self.world_size / seconds if seconds > 0 else 0.0,
            "learning_rate": self.learning_rate,
        }

    # ------------------------------------------------------------------ resume
    def save_state(self, directory: str | Path, extra: Mapping[str, Any] | None = None) -> None:
        """Write everything needed to resume (weights, optimizer, counters, random state,
        pending accumulated gradients) into ``directory``. Only rank 0 writes; all ranks
        wait for it. ``extra`` (JSON-serialisable, e.g. the epoch) is returned by
        :meth:`load_state`."""
        mx.eval(self._state, self._accum)
        if self.is_main_process:
            checkpointing.save_trainer_state(self, Path(directory), dict(extra or {}))
        distributed.barrier(self.group)

    def load_state(self, directory: str | Path) -> dict[str, Any]:
        """Restore what :meth:`save_state` wrote (every rank reads); returns its ``extra``."""
        extra = checkpointing.load_trainer_state(self, Path(directory))
        self._build_step_functions()
        return extra
