"""Per-mixer cache of long-convolution kernel spectra, valid while the parameters are unchanged."""

from __future__ import annotations

from collections import OrderedDict

import mlx.core as mx


class SpectrumCache:
    """Kernel spectra of an inference-mode mixer, keyed by (length, plan, dtype).

    Each entry keeps the filter parameter arrays it was computed from and is valid only while
    the mixer still holds *those same array objects*: ``Module.update`` (optimizer steps,
    ``load_weights``, ``set_dtype``, ``nn.value_and_grad``'s tracers) replaces them, so a stale
    entry is never used. In-place edits (``param[...] = ...``) keep the object: call
    :func:`mlxbert_m2.mixer.clear_filter_cache` after those.
    """

    def __init__(self, max_entries: int = 4):
        self.max_entries = max_entries
        self.entries: OrderedDict[tuple, tuple[tuple[mx.array, ...], mx.array]] = OrderedDict()

    def get(self, key: tuple, params: tuple[mx.array, ...]) -> mx.array | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        stored, value = entry
        if len(stored) != len(params) or any(a is not b for a, b in zip(stored, params)):
            del self.entries[key]
            return None
        self.entries.move_to_end(key)
        return value

    def put(self, key: tuple, params: tuple[mx.array, ...], value: mx.array) -> None:
        self.entries[key] = (params, value)
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()
