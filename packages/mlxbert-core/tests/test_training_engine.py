"""Trainer: compiled step, accumulation, clipping, schedules, precision, resume, checkpointing."""

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlxbert_core.training import (
    Trainer,
    TrainingConfig,
    build_schedule,
    disable_gradient_checkpointing,
    enable_gradient_checkpointing,
    find_layers,
    is_decayed,
)

VOCAB, DIM, LABELS = 40, 16, 3


class TinyEncoder(nn.Module):
    """Embedding -> a stack of transformer layers -> LayerNorm -> mean pool -> classifier."""

    def __init__(self, layers: int = 2, dim: int = DIM, dropout: float = 0.0):
        super().__init__()
        self.embeddings = nn.Embedding(VOCAB, dim)
        self.layers = [
            nn.TransformerEncoderLayer(dim, 2, 2 * dim, dropout=dropout) for _ in range(layers)
        ]
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(dim, LABELS)

    def __call__(self, input_ids, attention_mask):
        h = self.embeddings(input_ids)
        mask = mx.where(attention_mask[:, None, None, :] > 0, 0.0, -1e4).astype(h.dtype)
        for layer in self.layers:
            h = layer(h, mask)
        h = self.norm(h)
        weights = attention_mask[..., None].astype(h.dtype)
        pooled = (h * weights).sum(axis=1) / weights.sum(axis=1)
        return self.classifier(self.dropout(pooled))


def loss_fn(model, batch):
    logits = model(batch["input_ids"], batch["attention_mask"]).astype(mx.float32)
    return nn.losses.cross_entropy(logits, batch["labels"], reduction="mean")


def make_model(seed: int = 0, **kwargs) -> TinyEncoder:
    mx.random.seed(seed)
    model = TinyEncoder(**kwargs)
    mx.eval(model.parameters())
    return model


def make_batches(count: int, batch: int = 4, length: int = 8, seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        mask = np.ones((batch, length), dtype=np.int32)
        mask[0, length // 2 :] = 0  # one padded row
        out.append(
            {
                "input_ids": mx.array(rng.integers(1, VOCAB, (batch, length)).astype(np.int32)),
                "attention_mask": mx.array(mask),
                "labels": mx.array(rng.integers(0, LABELS, batch).astype(np.int32)),
            }
        )
    return out


def params_of(model) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in tree_flatten(model.trainable_parameters())}


def assert_params_close(a, b, atol=1e-6, rtol=1e-5):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=atol, rtol=rtol, err_msg=k)


def config(**kwargs) -> TrainingConfig:
    base = dict(learning_rate=1e-2, warmup_steps=0, schedule="constant", compile=False)
    base.update(kwargs)
    return TrainingConfig(**base)


def test_compiled_step_equals_eager_step():
    batches = make_batches(3)
    results = {}
    for compiled in (False, True):
        model = make_model()
        trainer = Trainer(model, loss_fn, config(compile=compiled), total_steps=3)
        losses = [float(trainer.step(b)) for b in batches]
        results[compiled] = (losses, params_of(model))
    np.testing.assert_allclose(results[True][0], results[False][0], rtol=1e-5, atol=1e-6)
    assert_params_close(results[True][1], results[False][1], atol=1e-5, rtol=1e-4)


def test_accumulating_k_micro_batches_equals_one_big_batch():
    micro = make_batches(4, batch=2)
    big = {k: mx.concatenate([b[k] for b in micro]) for k in micro[0]}

    model_a = make_model()
    accum = Trainer(model_a, loss_fn, config(grad_accum_steps=4, max_grad_norm=0.5), total_steps=2)
    for i, b in enumerate(micro):
        accum.step(b)
        assert accum.optimizer_step == (1 if i == 3 else 0)

    model_b = make_model()
    single = Trainer(model_b, loss_fn, config(max_grad_norm=0.5), total_steps=2)
    single.step(big)
    before = params_of(make_model())
    after_a, after_b = params_of(model_a), params_of(model_b)
    assert any(not np.allclose(before[k], after_a[k]) for k in before), "no update happened"
    # AdamW divides by sqrt(v): summation-order noise in near-zero gradients shows at ~1e-6
    assert_params_close(after_a, after_b, atol=2e-5, rtol=1e-4)
    assert accum.micro_step == 4 and single.micro_step == 1


def test_clipping_limits_the_update_and_reports_the_raw_norm():
    batch = make_batches(1)[0]
    model = make_model()
    start = params_of(model)
    grads = nn.value_and_grad(model, lambda b: loss_fn(model, b))(batch)[1]
    flat = [np.asarray(g, dtype=np.float64).ravel() for _, g in tree_flatten(grads)]
    raw_norm = float(np.sqrt(sum((f**2).sum() for f in flat)))
    max_norm = raw_norm / 10
    # plain SGD with lr 1: the change of the weights is exactly the clipped gradient
    trainer = Trainer(
        model, loss_fn, config(max_grad_norm=max_norm), optimizer=optim.SGD(learning_rate=1.0)
    )
    trainer.step(batch)
    assert float(trainer.last_grad_norm) == pytest.approx(raw_norm, rel=1e-5)
    after = params_of(model)
    step_norm = np.sqrt(sum(((after[k] - start[k]) ** 2).sum() for k in start))
    assert step_norm == pytest.approx(max_norm, rel=1e-4)


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("linear", [0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0]),
        ("cosine", [0.0, 0.5, 1.0, 0.853553, 0.5, 0.146447, 0.0, 0.0]),
        ("constant", [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
    ],
)
def test_schedule_values(kind, expected):
    schedule = build_schedule(1.0, 6, warmup_steps=2, kind=kind)
    got = [float(schedule(mx.array(step))) for step in range(8)]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_schedule_floor_and_errors():
    schedule = build_schedule(1.0, 4, kind="linear", min_lr_ratio=0.1)
    assert [round(float(schedule(mx.array(s))), 5) for s in range(5)] == [
        1.0,
        0.775,
        0.55,
        0.325,
        0.1,
    ]
    with pytest.raises(ValueError, match="needs total_steps"):
        build_schedule(1.0, None, kind="cosine")
    with pytest.raises(ValueError, match="warmup_steps"):
        build_schedule(1.0, 3, warmup_steps=5)
    with pytest.raises(ValueError, match="schedule="):
        TrainingConfig(schedule="step")


def test_trainer_learning_rate_follows_optimizer_updates():
    cfg = config(
        learning_rate=1.0,
        warmup_ratio=0.25,
        warmup_steps=None,
        grad_accum_steps=2,
        schedule="linear",
    )
    trainer = Trainer(make_model(), loss_fn, cfg, total_steps=4)
    seen = []
    for b in make_batches(8, batch=2):
        seen.append(trainer.learning_rate)
        trainer.step(b)
    # warm-up of 1 update, then linear decay over 3; the rate changes every 2 micro-steps
    np.testing.assert_allclose(seen, [0, 0, 1, 1, 2 / 3, 2 / 3, 1 / 3, 1 / 3], atol=1e-6)
    assert trainer.optimizer_step == 4
    assert cfg.optimizer_steps(8) == 4 * cfg.epochs


def test_weight_decay_rule():
    matrix, vector = mx.zeros((4, 4)), mx.zeros((4,))
    assert is_decayed("encoder.layer.0.attention.self.query.weight", matrix)
    assert is_decayed("embeddings.word_embeddings.weight", matrix)
    assert not is_decayed("encoder.layer.0.attention.self.query.bias", vector)
    assert not is_decayed("embeddings.LayerNorm.weight", vector)
    assert not is_decayed("layers.0.norm1.weight", matrix)  # a norm, whatever its shape
    # decayed matrices shrink under weight decay alone; norms and biases do not move
    model = make_model()
    trainer = Trainer(
        model,
        lambda m, b: (m(b["input_ids"], b["attention_mask"]) * 0).sum(),
        config(learning_rate=0.1, weight_decay=0.5, warmup_steps=0, schedule="constant"),
    )
    before = params_of(model)
    trainer.step(make_batches(1)[0])
    after = params_of(model)
    assert np.allclose(after["norm.weight"], before["norm.weight"])
    assert np.allclose(after["classifier.bias"], before["classifier.bias"])
    np.testing.assert_allclose(after["classifier.weight"], before["classifier.weight"] * 0.95)


@pytest.mark.parametrize("compiled", [False, True])
def test_save_and_load_state_resumes_the_same_trajectory(tmp_path, compiled):
    batches = make_batches(6, batch=2)
    cfg = config(grad_accum_steps=2, compile=compiled, seed=3)

    model = make_model(dropout=0.2)
    straight = Trainer(model, loss_fn, cfg, total_steps=3)
    expected = [float(straight.step(b)) for b in batches]
    expected_params = params_of(model)

    model = make_model(dropout=0.2)
    first = Trainer(model, loss_fn, cfg, total_steps=3)
    got = [float(first.step(b)) for b in batches[:3]]  # stop inside an accumulation window
    first.save_state(tmp_path / "state", extra={"epoch": 1})
    mx.random.seed(12345)  # resuming must not depend on the random state at load time

    resumed_model = make_model(seed=99, dropout=0.2)  # different weights: all overwritten
    resumed = Trainer(resumed_model, loss_fn, cfg, total_steps=3)
    assert resumed.load_state(tmp_path / "state") == {"epoch": 1}
    assert (resumed.micro_step, resumed.optimizer_step) == (3, 1)
    got += [float(resumed.step(b)) for b in batches[3:]]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert_params_close(params_of(resumed_model), expected_params, atol=1e-7, rtol=1e-6)


def test_load_state_lists_mismatches(tmp_path):
    trainer = Trainer(make_model(), loss_fn, config())
    trainer.step(make_batches(1)[0])
    trainer.save_state(tmp_path)
    other = Trainer(make_model(layers=1), loss_fn, config())
    with pytest.raises(ValueError, match=r"missing|unexpected") as info:
        other.load_state(tmp_path)
    assert "layers.1" in str(info.value)
    with pytest.raises(FileNotFoundError, match="save_state"):
        other.load_state(tmp_path / "nothing")


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_reduced_precision_keeps_float32_master_weights(dtype):
    model = make_model()
    start = params_of(model)
    trainer = Trainer(model, loss_fn, config(compute_dtype=dtype), total_steps=4)
    losses = [float(trainer.step(b)) for b in make_batches(4)]
    assert all(np.isfinite(losses))
    for _, value in tree_flatten(model.parameters()):
        assert value.dtype == mx.float32
    for _, value in tree_flatten(trainer.optimizer.state):
        assert value.dtype in (mx.float32, mx.uint64, mx.int32, mx.uint32)
    moved = params_of(model)
    assert any(not np.allclose(start[k], moved[k]) for k in start)

    # the step's loss is the reduced-precision forward: close to, not equal to, float32's
    reference = make_model()
    ref_loss = float(loss_fn(reference, make_batches(1)[0]))
    low = make_model()
    trainer = Trainer(low, loss_fn, config(compute_dtype=dtype))
    assert float(trainer.step(make_batches(1)[0])) == pytest.approx(ref_loss, rel=3e-2)


def test_float16_overflow_skips_the_update_and_halves_the_scale():
    model = make_model()
    start = params_of(model)
    trainer = Trainer(model, loss_fn, config(compute_dtype="float16"))
    trainer.loss_scale.state["scale"] = mx.array(2.0**20)  # overflows float16 (max 65504)
    trainer.step(make_batches(1)[0])
    assert_params_close(params_of(model), start, atol=0, rtol=0)
    assert float(trainer.loss_scale.scale) == 2.0**19


def _grads(model, batch):
    return nn.value_and_grad(model, lambda b: loss_fn(model, b))(batch)


def test_gradient_checkpointing_same_gradients_less_memory():
    rng = np.random.default_rng(0)
    batch = {
        "input_ids": mx.array(rng.integers(1, VOCAB, (4, 128)).astype(np.int32)),
        "attention_mask": mx.ones((4, 128), dtype=mx.int32),
        "labels": mx.array(rng.integers(0, LABELS, 4).astype(np.int32)),
    }

    def peak(model):
        mx.eval(model.parameters())
        mx.synchronize()
        mx.reset_peak_memory()
        loss, grads = _grads(model, batch)
        mx.eval(loss, grads)
        return mx.get_peak_memory(), float(loss), params_of_tree(grads)

    model = make_model(layers=4, dim=64)
    plain_peak, plain_loss, plain_grads = peak(model)
    assert len(find_layers(model)) == 4
    assert enable_gradient_checkpointing(model) == 4
    ckpt_peak, ckpt_loss, ckpt_grads = peak(model)
    assert ckpt_loss == pytest.approx(plain_loss, rel=1e-6)
    assert_params_close(ckpt_grads, plain_grads, atol=1e-6, rtol=1e-5)
    assert ckpt_peak < 0.8 * plain_peak, (ckpt_peak, plain_peak)
    # only these instances changed class; undo restores them
    assert type(model.layers[0]).__name__.startswith("Checkpointed")
    assert type(nn.TransformerEncoderLayer(8, 2)).__name__ == "TransformerEncoderLayer"
    assert disable_gradient_checkpointing(model) == 4
    assert type(model.layers[0]) is nn.TransformerEncoderLayer


def params_of_tree(tree) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in tree_flatten(tree)}


def test_gradient_checkpointing_in_the_trainer_matches_plain_training():
    batches = make_batches(2)
    results = []
    for ckpt in (False, True):
        model = make_model()
        trainer = Trainer(model, loss_fn, config(gradient_checkpointing=ckpt), total_steps=2)
        results.append(([float(trainer.step(b)) for b in batches], params_of(model)))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6)
    assert_params_close(results[0][1], results[1][1])


def test_find_layers_error_says_what_to_do():
    with pytest.raises(ValueError, match="Pass the layers explicitly"):
        find_layers(nn.Linear(2, 2))


def test_frozen_parts_are_not_updated():
    model = make_model()
    model.freeze()
    model.classifier.unfreeze()
    start = params_of(make_model())
    trainer = Trainer(model, loss_fn, config())
    trainer.step(make_batches(1)[0])
    now = {k: np.array(v) for k, v in tree_flatten(model.parameters())}
    assert np.allclose(now["embeddings.weight"], start["embeddings.weight"])
    assert not np.allclose(now["classifier.weight"], start["classifier.weight"])
    model.freeze()
    with pytest.raises(ValueError, match="no trainable parameters"):
        Trainer(model, loss_fn, config())


def test_train_epoch_reports_and_learns():
    batches = make_batches(4) * 5
    model = make_model()
    cfg = config(learning_rate=3e-2, grad_accum_steps=3, compile=True, schedule="linear")
    trainer = Trainer(model, loss_fn, cfg, total_steps=cfg.optimizer_steps(len(batches), 2))
    first = trainer.train_epoch(batches, progress=False)
    second = trainer.train_epoch(batches, progress=False)
    assert first["steps"] == 20 and first["updates"] == 7  # ceil(20 / 3): the tail is applied
    assert second["loss"] < first["loss"]
    assert first["samples_per_s"] > 0 and first["seconds"] > 0
    assert trainer.optimizer_step == 14 and trainer.learning_rate == pytest.approx(0.0, abs=1e-9)
    # 19 batches: 6 full windows of 3, and the 19th alone closes the epoch with an update
    third = trainer.train_epoch(batches[:19], progress=True)  # the tqdm bar path too
    assert third["updates"] == 7 and trainer._accum is None


def test_trains_the_project_bert_with_compile_bf16_and_checkpointing():
    bert = pytest.importorskip("mlxbert_core.models.bert")
    config_dict = {
        "vocab_size": 50,
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "max_position_embeddings": 64,
        "num_labels": 3,
    }

    def bert_loss(model, batch):
        logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
        return nn.losses.cross_entropy(logits.astype(mx.float32), batch["labels"], reduction="mean")

    from mlxbert_core.training import batch_iterator

    rng = np.random.default_rng(0)
    ids = [rng.integers(1, 50, n).tolist() for n in rng.integers(4, 30, 24)]
    labels = [int(x[0]) % 3 for x in ids]  # learnable from the first token
    batches = batch_iterator({"input_ids": ids, "labels": labels}, 8, seed=0)
    mx.random.seed(0)
    model = bert.BertForSequenceClassification(bert.BertModelArgs.from_dict(config_dict))
    cfg = TrainingConfig(
        learning_rate=3e-3,
        warmup_ratio=0.1,
        compute_dtype="bfloat16",
        gradient_checkpointing=True,
        epochs=4,
    )
    trainer = Trainer(model, bert_loss, cfg, total_steps=cfg.optimizer_steps(len(batches)))
    assert len(find_layers(model)) == 2
    stats = [trainer.train_epoch(batches, progress=False) for _ in range(cfg.epochs)]
    assert stats[-1]["loss"] < stats[0]["loss"]
    assert all(v.dtype == mx.float32 for _, v in tree_flatten(model.parameters()))


def test_weight_decay_groups_join_lists_of_modules():
    """Decayed and undecayed parameters of a list with parameter-free modules in it (as in
    M2-BERT's filter MLPs): MLX's own MultiOptimizer join fails on it."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [nn.Linear(4, 4), nn.ReLU(), nn.ReLU(), nn.Linear(4, 1, bias=False)]

        def __call__(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    model = Net()
    config = TrainingConfig(weight_decay=0.1, schedule="constant", learning_rate=1e-2)
    trainer = Trainer(model, lambda m, b: mx.mean(m(b["x"]) ** 2), config)
    before = np.array(model.layers[3].weight)
    loss = trainer.step({"x": mx.ones((2, 4))})
    assert np.isfinite(float(loss)) and not np.allclose(np.array(model.layers[3].weight), before)


def test_adamw_steps_are_pytorchs():
    """Three updates equal PyTorch's ``torch.optim.AdamW`` formula (bias-corrected moments,
    decoupled weight decay on matrices only), written out in NumPy."""
    model = make_model()
    lr, wd, (b1, b2), eps = 1e-2, 0.1, (0.9, 0.999), 1e-8
    cfg = config(
        learning_rate=lr, weight_decay=wd, adam_betas=(b1, b2), adam_eps=eps, max_grad_norm=None
    )
    trainer = Trainer(model, loss_fn, cfg)
    params = params_of(model)
    decayed = {k: is_decayed(k, mx.array(v)) for k, v in params.items()}
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
    grad_fn = nn.value_and_grad(model, lambda b: loss_fn(model, b))
    for step, batch in enumerate(make_batches(3), start=1):
        _, grads = grad_fn(batch)
        grads = {k: np.array(v, dtype=np.float64) for k, v in tree_flatten(grads)}
        for k, g in grads.items():
            p = params[k].astype(np.float64) * (1 - lr * wd if decayed[k] else 1.0)
            m, v = moments[k]
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            moments[k] = (m, v)
            denom = np.sqrt(v) / np.sqrt(1 - b2**step) + eps
            params[k] = p - lr / (1 - b1**step) * m / denom
        trainer.step(batch)
        # float32 against float64: entries whose gradient is near 0 move by a few 1e-5
        # (uncorrected moments would be off by up to 3x the learning rate)
        assert_params_close(params_of(model), params, atol=5e-5, rtol=1e-3)
