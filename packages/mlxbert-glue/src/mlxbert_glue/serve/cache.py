"""The response cache: least recently used answers, keyed by model and exact input."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

_MISSING = object()


class LRUCache:
    """At most ``size`` entries; ``size=0`` turns it off (nothing is kept, every lookup
    misses). Used from the event loop only, so it needs no lock."""

    def __init__(self, size: int):
        if size < 0:
            raise ValueError(f"cache size must be 0 or more, got {size}")
        self.size = int(size)
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.size > 0

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The cached value (now the most recently used), or ``default``."""
        if not self.enabled:
            return default
        value = self._data.get(key, _MISSING)
        if value is _MISSING:
            self.misses += 1
            return default
        self._data.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: Hashable, value: Any) -> None:
        if not self.enabled:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data


__all__ = ["LRUCache"]
