"""`LoraConfig`: what to adapt and how, with PEFT's matching rules and file fields."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Module names (suffixes) of the BERT-family layers, per architecture. PEFT matches a list entry
# against a module path by equality or by a ".name" suffix, so "attn.Wo" picks ModernBERT's
# attention output projection and not its MLP's `mlp.Wo`.
ATTENTION_QV = ("query", "value", "attn.Wqkv", "qkv")
ATTENTION_ALL = (
    "query",
    "key",
    "value",
    "attention.output.dense",  # BERT
    "attn.Wqkv",
    "attn.Wo",  # ModernBERT
    "qkv",
    "wo",  # NeoBERT
)
FEED_FORWARD = (
    "intermediate.dense",
    "output.dense",  # BERT (also matches attention.output.dense, already included)
    "mlp.Wi",
    "mlp.Wo",  # ModernBERT
    "ffn.w12",
    "ffn.w3",  # NeoBERT
)

# name -> (r, lora_alpha, targets, 4-bit base?)
PRESETS: dict[str, tuple[int, int, tuple[str, ...], bool]] = {
    "efficient": (4, 8, ATTENTION_QV, False),
    "balanced": (8, 16, ATTENTION_ALL, False),
    "expressive": (16, 32, ATTENTION_ALL + FEED_FORWARD, False),
    "qlora": (8, 16, ATTENTION_ALL, True),
}

_BIAS_MODES = ("none", "all", "lora_only")
SEQ_CLS_HEADS = ("classifier", "score")  # PEFT adds these to modules_to_save for SEQ_CLS

# Fields PEFT's LoraConfig has that this package does not implement; a file that sets them to
# anything but these values cannot be reproduced faithfully, so loading it is refused.
_UNSUPPORTED_NON_DEFAULT: dict[str, Any] = {
    "layers_to_transform": None,
    "layer_replication": None,
    "use_qalora": False,
    "lora_bias": False,
    "target_parameters": None,
    "trainable_token_indices": None,
}


def pattern_key(patterns: Iterable[str], name: str) -> str | None:
    """The first key of `patterns` (in order) that matches `name` by PEFT's rule, or None.

    PEFT's rule: `re.match(r"(.*\\.)?(" + key + r")$", name)`. The key must match a whole suffix of
    the dotted name starting at a dot boundary; its dots are regex wildcards.
    """
    for key in patterns:
        if re.match(r"(.*\.)?(" + key + r")$", name):
            return key
    return None


def name_matches(name: str, targets: str | Sequence[str]) -> bool:
    """PEFT's `target_modules` rule: a string is a regex that must match the whole name; a list
    matches a name equal to an entry or ending with "." + entry."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


@dataclass
class LoraConfig:
    """Settings of a LoRA adapter, with the meaning and defaults of PEFT's `LoraConfig`.

    Args:
        r: rank of the update `B @ A`.
        alpha: `lora_alpha`; the update is scaled by `alpha / r` (`alpha / sqrt(r)` with rsLoRA).
        dropout: dropout probability on the adapter's input (training only).
        target_modules: list of module names (a module matches when its dotted path equals an
            entry or ends with "." + entry), a regex string that must match the whole path, or
            "all-linear" (every Linear except `modules_to_save`). None means the
            "efficient" preset's names.
        rank_pattern / alpha_pattern: per-module overrides; the first key (dict order) for
            which `re.match(r"(.*\\.)?(" + key + r")$", path)` succeeds wins.
        use_rslora: scale by `alpha / sqrt(r)` (rank-stabilised LoRA).
        use_dora: weight-decomposed LoRA (trainable magnitude per output feature).
        bias: "none", "all" (every bias trains) or "lora_only" (biases of adapted layers train).
        modules_to_save: modules trained in full and saved with the adapter (e.g. ["classifier"]).
        exclude_modules: names or a regex of modules never adapted.
        task_type: PEFT task type written to `adapter_config.json`. "SEQ_CLS" adds
            "classifier" and "score" to `modules_to_save`, as PEFT does.
        quantize_bits / quantize_group_size: QLoRA; `apply_lora` first quantizes every other
            Linear layer of the base (not `modules_to_save`), by default with
            `nn.QuantizedLinear` (see `apply_lora`'s `quantize_layer`).
    """

    r: int = 8
    alpha: float = 16
    dropout: float = 0.0
    target_modules: str | list[str] | None = None
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, float] = field(default_factory=dict)
    use_rslora: bool = False
    use_dora: bool = False
    bias: str = "none"
    modules_to_save: list[str] | None = None
    exclude_modules: str | list[str] | None = None
    task_type: str | None = None
    base_model_name_or_path: str | None = None
    quantize_bits: int | None = None
    quantize_group_size: int = 64

    def __post_init__(self) -> None:
        if self.target_modules is None:
            self.target_modules = list(ATTENTION_QV)
        elif not isinstance(self.target_modules, str):
            self.target_modules = list(self.target_modules)
        if self.modules_to_save is not None:
            self.modules_to_save = list(self.modules_to_save)
        if self.task_type == "SEQ_CLS":
            # As PEFT's sequence-classification model: the classification head always trains
            # and is saved with the adapter.
            saved = self.modules_to_save or []
            self.modules_to_save = saved + [m for m in SEQ_CLS_HEADS if m not in saved]
        if not (isinstance(self.r, int) and self.r > 0):
            raise ValueError(f"LoraConfig.r must be a positive integer, got {self.r!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoraConfig.dropout must be in [0, 1), got {self.dropout!r}.")
        if self.bias not in _BIAS_MODES:
            raise ValueError(f"LoraConfig.bias must be one of {_BIAS_MODES}, got {self.bias!r}.")
        for key, value in self.rank_pattern.items():
            if not (isinstance(value, int) and value > 0):
                raise ValueError(
                    f"rank_pattern[{key!r}] must be a positive integer, got {value!r}."
                )
        if self.quantize_bits is not None and self.quantize_bits not in (2, 3, 4, 5, 6, 8):
            raise ValueError(f"quantize_bits must be 2, 3, 4, 5, 6 or 8, got {self.quantize_bits}.")

    # ----------------------------------------------------------------------------- per module
    def rank_for(self, name: str) -> int:
        """The rank PEFT gives the module at dotted path `name`."""
        key = pattern_key(self.rank_pattern, name)
        return self.r if key is None else int(self.rank_pattern[key])

    def alpha_for(self, name: str) -> float:
        """The `lora_alpha` PEFT gives the module at dotted path `name`."""
        key = pattern_key(self.alpha_pattern, name)
        return self.alpha if key is None else self.alpha_pattern[key]

    def scaling_for(self, name: str) -> float:
        r, alpha = self.rank_for(name), self.alpha_for(name)
        return alpha / r**0.5 if self.use_rslora else alpha / r

    def is_target(self, name: str) -> bool:
        """Whether the Linear layer at `name` is adapted (before `modules_to_save` filtering)."""
        if self.exclude_modules is not None and name_matches(name, self.exclude_modules):
            return False
        if self.target_modules == "all-linear":
            return True
        return name_matches(name, self.target_modules)

    # ----------------------------------------------------------------------------- presets
    @classmethod
    def preset(cls, name: str, model: Any = None, **overrides: Any) -> LoraConfig:
        """A named preset; see `PRESETS` and the package README.

        ``efficient``: r=4, alpha=8 on the query/value projections (BERT `query`/`value`,
        ModernBERT `attn.Wqkv`, NeoBERT `qkv`). ``balanced``: r=8, alpha=16 on every attention
        projection (plus `key`, the attention output `attention.output.dense` / `attn.Wo` / `wo`).
        ``expressive``: r=16, alpha=32 on attention and feed-forward layers. ``qlora``: the
        balanced adapter on a 4-bit (group 64) quantized base.

        With `model`, the target list keeps only names present in it (and an error lists the
        model's Linear layers when none is). Keyword overrides replace any field.
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown LoRA preset {name!r}; choose one of {sorted(PRESETS)}.")
        r, alpha, targets, quantized = PRESETS[name]
        kwargs: dict[str, Any] = {"r": r, "alpha": alpha, "target_modules": list(targets)}
        if quantized:
            kwargs["quantize_bits"] = 4
        kwargs.update(overrides)
        config = cls(**kwargs)
        if model is not None and not isinstance(config.target_modules, str):
            from .model_tree import linear_paths  # local: keeps this module free of mlx imports

            paths = linear_paths(model)
            present = [t for t in config.target_modules if any(name_matches(p, [t]) for p in paths)]
            if not present:
                raise ValueError(
                    f"Preset {name!r} targets {config.target_modules}, none of which is a Linear "
                    f"layer of this model. Its Linear layers include: {paths[:12]}. "
                    "Pass target_modules=[...] explicitly."
                )
            config.target_modules = present
        return config

    # ----------------------------------------------------------------------------- PEFT fields
    def to_peft_dict(self) -> dict[str, Any]:
        """The `adapter_config.json` content PEFT writes for this adapter."""
        targets = self.target_modules
        if isinstance(targets, list):
            targets = sorted(set(targets))  # PEFT stores a set; it serialises it sorted
        return {
            "alpha_pattern": dict(self.alpha_pattern),
            "auto_mapping": None,
            "base_model_name_or_path": self.base_model_name_or_path,
            "bias": self.bias,
            "exclude_modules": self.exclude_modules,
            "fan_in_fan_out": False,
            "inference_mode": True,
            "init_lora_weights": True,
            "layer_replication": None,
            "layers_pattern": None,
            "layers_to_transform": None,
            "loftq_config": {},
            "lora_alpha": self.alpha,
            "lora_bias": False,
            "lora_dropout": self.dropout,
            "megatron_config": None,
            "megatron_core": "megatron.core",
            "modules_to_save": self.modules_to_save,
            "peft_type": "LORA",
            "r": self.r,
            "rank_pattern": dict(self.rank_pattern),
            "revision": None,
            "target_modules": targets,
            "task_type": self.task_type,
            "use_dora": self.use_dora,
            "use_rslora": self.use_rslora,
        }

    @classmethod
    def from_peft_dict(cls, data: dict[str, Any]) -> LoraConfig:
        """Read PEFT's `adapter_config.json` content (unknown PEFT fields are ignored)."""
        peft_type = data.get("peft_type", "LORA")
        if str(peft_type).upper() != "LORA":
            raise ValueError(f"Not a LoRA adapter: peft_type is {peft_type!r} (expected 'LORA').")
        unsupported = [
            f"{k}={data[k]!r}"
            for k, default in _UNSUPPORTED_NON_DEFAULT.items()
            if data.get(k, default) not in (default, [], {})
        ]
        if unsupported:
            raise ValueError(
                "This adapter uses PEFT options mlxbert-lora does not implement: "
                + ", ".join(unsupported)
            )
        targets = data.get("target_modules")
        if targets is not None and not isinstance(targets, str):
            targets = list(targets)
        return cls(
            r=int(data.get("r", 8)),
            alpha=data.get("lora_alpha", 8),
            dropout=float(data.get("lora_dropout", 0.0) or 0.0),
            target_modules=targets,
            rank_pattern=dict(data.get("rank_pattern") or {}),
            alpha_pattern=dict(data.get("alpha_pattern") or {}),
            use_rslora=bool(data.get("use_rslora", False)),
            use_dora=bool(data.get("use_dora", False)),
            bias=data.get("bias", "none") or "none",
            modules_to_save=data.get("modules_to_save"),
            exclude_modules=data.get("exclude_modules"),
            task_type=data.get("task_type"),
            base_model_name_or_path=data.get("base_model_name_or_path"),
        )

    def replace(self, **changes: Any) -> LoraConfig:
        return dataclasses.replace(self, **changes)
