"""Length-bucketed sampling, dynamic padding and sharding."""

import mlx.core as mx
import numpy as np
import pytest

from mlxbert_core.training import LengthBucketSampler, batch_iterator


def random_lengths(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 120, n)


@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_covers_every_example_once_per_epoch(drop_last):
    lengths = random_lengths(103)
    sampler = LengthBucketSampler(lengths, 8, mega_batch_factor=4, drop_last=drop_last)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        seen = np.concatenate(batches)
        assert len(batches) == len(sampler)
        if drop_last:
            assert len(seen) == 96 and len(set(seen.tolist())) == 96
        else:
            assert sorted(seen.tolist()) == list(range(103))
        sizes = sorted(len(b) for b in batches)
        assert sizes == [8] * 12 if drop_last else sizes == [7] + [8] * 12


def test_sampler_orders_differ_by_epoch_and_repeat_by_seed():
    lengths = random_lengths(64)
    a = LengthBucketSampler(lengths, 4, seed=7)
    b = LengthBucketSampler(lengths, 4, seed=7)
    first = list(a)
    assert first == list(b)
    a.set_epoch(1)
    assert list(a) != first


def test_bucketing_reduces_padding():
    lengths = random_lengths(400)

    def padded_tokens(bucket):
        sampler = LengthBucketSampler(lengths, 16, bucket_by_length=bucket, mega_batch_factor=25)
        return sum(len(b) * lengths[b].max() for b in map(np.array, sampler))

    assert padded_tokens(True) < 0.7 * padded_tokens(False)


@pytest.mark.parametrize("n", [96, 100, 97])
def test_shards_are_disjoint_cover_the_data_and_have_equal_batch_counts(n):
    lengths = random_lengths(n)
    shards = [
        list(LengthBucketSampler(lengths, 8, num_shards=3, shard_index=i, seed=5)) for i in range(3)
    ]
    assert len({len(s) for s in shards}) == 1  # no rank waits for a missing batch
    flat = [np.concatenate(s).tolist() for s in shards]
    union = sorted(x for f in flat for x in f)
    if n % 3 == 0 or n % 24 >= 3:
        assert union == list(range(n))  # disjoint and complete
    else:  # a final batch smaller than the shard count is completed from the start
        assert set(union) == set(range(n))
    # the shards together see exactly the global batches of one process with 3x the batch
    single = LengthBucketSampler(lengths, 24, seed=5).global_batches()
    for step, global_batch in enumerate(single):
        parts = np.concatenate([shards[i][step] for i in range(3)])
        assert set(global_batch.tolist()) <= set(parts.tolist())


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="shard_index"):
        LengthBucketSampler([3, 4], 2, num_shards=2, shard_index=2)
    with pytest.raises(ValueError, match="empty"):
        LengthBucketSampler([], 2)


def test_batch_iterator_pads_dynamically_and_stacks_fields():
    ids = [[5, 6, 7], [8], [9, 10, 11, 12, 13, 14, 15, 16, 17], [4, 4]]
    features = {
        "input_ids": ids,
        "token_type_ids": [[0, 0, 1], [0], [0] * 5 + [1] * 4, [0, 1]],
        "labels": [1, 0, 1, 0],
        "weights": np.array([0.5, 1.0, 2.0, 1.5]),
        "multi": [[1, 0], [0, 1], [1, 1], [0, 0]],
        "guid": ["a", "b", "c", "d"],
    }
    batches = list(batch_iterator(features, 2, shuffle=False, bucket_by_length=False, pad_id=1))
    assert len(batches) == 2
    first, second = batches
    assert first["input_ids"].shape == (2, 8)  # longest 3, rounded up to 8
    assert second["input_ids"].shape == (2, 16)  # longest 9 -> 16
    assert first["input_ids"].tolist()[1] == [8] + [1] * 7
    assert first["attention_mask"].tolist()[0] == [1, 1, 1, 0, 0, 0, 0, 0]
    assert second["token_type_ids"].tolist()[0] == [0] * 5 + [1] * 4 + [0] * 7
    assert first["labels"].dtype == mx.int32 and first["labels"].tolist() == [1, 0]
    assert first["weights"].dtype == mx.float32
    assert first["multi"].shape == (2, 2)
    assert first["guid"] == ["a", "b"]


def test_batch_iterator_token_level_labels_buckets_and_indices():
    rng = np.random.default_rng(0)
    ids = [rng.integers(3, 50, n).tolist() for n in rng.integers(2, 40, 30)]
    tags = [[i % 3 for i in range(len(x))] for x in ids]
    it = batch_iterator(
        {"input_ids": ids, "labels": tags},
        4,
        length_buckets=(16, 32, 64),
        return_indices=True,
        seed=1,
    )
    seen = []
    for batch in it:
        length = batch["input_ids"].shape[1]
        assert length in (16, 32, 64)
        assert batch["labels"].shape == batch["input_ids"].shape  # per-token, padded alike
        labels, mask = np.array(batch["labels"]), np.array(batch["attention_mask"])
        assert (labels[mask == 0] == -100).all()
        assert "token_type_ids" in batch and int(mx.sum(batch["token_type_ids"])) == 0
        seen += batch["example_index"].tolist()
    assert sorted(seen) == list(range(30))
    # each iteration is a new epoch with a new order
    assert [b["example_index"].tolist() for b in it] != [b["example_index"].tolist() for b in it]


def test_batch_iterator_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="input_ids"):
        batch_iterator({"text": ["a"]}, 2)
    with pytest.raises(ValueError, match="mismatched"):
        batch_iterator({"input_ids": [[1], [2]], "labels": [0]}, 2)
    it = batch_iterator({"input_ids": [[1] * 70]}, 1, length_buckets=(32, 64))
    with pytest.raises(ValueError, match="largest length bucket"):
        next(iter(it))


def test_sharded_batch_iterator_lengths_match():
    ids = [[1] * n for n in random_lengths(50)]
    its = [batch_iterator({"input_ids": ids}, 4, num_shards=2, shard_index=i) for i in range(2)]
    assert len(its[0]) == len(its[1]) == 7
    sizes = [[b["input_ids"].shape[0] for b in it] for it in its]
    assert sizes[0] == sizes[1] and sorted(sizes[0]) == [1] + [4] * 6
