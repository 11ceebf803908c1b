"""Choosing layers by name: dotted names, regular expressions or predicates."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import mlx.nn as nn
from mlx.utils import tree_flatten

__all__ = ["DEFAULT_SKIP", "SENSITIVE_LAYERS", "Selector", "compile_selectors", "leaf_modules"]

Selector = str | re.Pattern | Callable[[str, nn.Module], bool]

# Task heads and poolers stay in full precision by default: they are small (a few matrices)
# and their outputs are the logits / the classification features themselves, so their
# rounding error is not averaged away by later layers. Matched on whole path components.
DEFAULT_SKIP = re.compile(
    r"(^|.*\.)(classifier|score|lm_head|qa_outputs|pooler|head|heads|cls|regressor)(\..*|$)"
    r"|(^|.*\.)decoder$"
)

# Attention value projections are the layers whose 4-bit rounding error hurts sentence
# embeddings most (measured per layer on all-MiniLM-L6-v2: the value projections of the last
# layers lead); they are ~8% of an encoder's Linear weights, so 8 bits there costs little.
SENSITIVE_LAYERS = re.compile(r"(^|.*\.)(value|v_proj)$")


@dataclass(frozen=True)
class Matcher:
    """One compiled selector: ``matches(path, module)`` plus a label for messages."""

    label: str
    test: Callable[[str, nn.Module], bool]

    def matches(self, path: str, module: nn.Module) -> bool:
        return bool(self.test(path, module))


def _compile_one(selector: Selector) -> Matcher:
    if isinstance(selector, re.Pattern):
        return Matcher(f"re.compile({selector.pattern!r})", lambda p, _m: selector.search(p))
    if isinstance(selector, str):
        if not selector:
            raise ValueError("An empty string cannot select layers.")
        try:
            pattern = re.compile(selector)
        except re.error:
            pattern = None

        # A dotted name selects every module whose path contains it as whole components:
        # "query" selects "encoder.layer.0.attention.self.query" and "encoder.layer.0" selects
        # everything in that block. Otherwise the string is a regular expression that must
        # match the whole path.
        def test(path: str, _module: nn.Module) -> bool:
            if f".{selector}." in f".{path}.":
                return True
            return pattern is not None and pattern.fullmatch(path) is not None

        return Matcher(repr(selector), test)
    if callable(selector):
        name = getattr(selector, "__name__", type(selector).__name__)
        return Matcher(f"predicate {name}", selector)
    raise TypeError(
        f"Cannot select layers with {selector!r}: use a module path, a regular expression "
        "(str or re.Pattern) or a predicate (path, module) -> bool."
    )


def compile_selectors(spec: Selector | Iterable[Selector] | None) -> list[Matcher]:
    """Turn ``None``, one selector or an iterable of selectors into matchers."""
    if spec is None:
        return []
    if isinstance(spec, (str, re.Pattern)) or callable(spec):
        return [_compile_one(spec)]
    return [_compile_one(s) for s in spec]


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(dotted path, module)`` for every leaf module, the paths ``nn.quantize`` uses."""
    return tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module)
