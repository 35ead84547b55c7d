import numpy as np
import tensorflow as tf

from qa_assistant.data.pipeline import bucket_lengths, ids_dataset, make_dataset


def ragged(lengths: list[int]) -> tf.RaggedTensor:
    rows = [[i + 1] * n for i, n in enumerate(lengths)]
    return tf.ragged.constant(rows, dtype=tf.int32)


def test_bucket_lengths() -> None:
    assert bucket_lengths(8) == [8]
    assert bucket_lengths(32) == [8, 16, 24, 32]
    assert bucket_lengths(300) == [8, 16, 24, 32, 64, 128, 256, 300]


def test_batches_are_padded_to_bucket_lengths_only() -> None:
    lengths = [1, 3, 9, 12, 20, 31, 2, 5] * 4
    ds = make_dataset(ragged(lengths), np.arange(len(lengths), dtype=np.int32), batch_size=4, max_length=32)
    widths, seen = set(), []
    for ids, targets in ds:
        widths.add(ids.shape[1])
        for row, target in zip(ids.numpy(), targets.numpy(), strict=True):
            assert np.count_nonzero(row) == lengths[target]  # right-padded with zeros
            assert row[0] == target + 1
            seen.append(int(target))
    assert widths <= {8, 16, 24, 32}
    assert sorted(seen) == list(range(len(lengths)))


def test_shuffling_is_seeded() -> None:
    lengths = [3] * 50

    def order(seed: int) -> list[int]:
        ds = make_dataset(
            ragged(lengths),
            np.arange(50, dtype=np.int32),
            batch_size=8,
            max_length=8,
            shuffle=True,
            seed=seed,
        )
        return [int(t) for _, targets in ds for t in targets.numpy()]

    assert order(1) == order(1) != order(2)
    assert sorted(order(1)) == list(range(50))


def test_ids_dataset_keeps_order() -> None:
    ds = ids_dataset(ragged([2, 1, 3]), batch_size=2)
    batches = [b.numpy().tolist() for b in ds]
    assert batches == [[[1, 1], [2, 0]], [[3, 3, 3]]]


def test_ids_dataset_pads_to_bucket_lengths() -> None:
    ds = ids_dataset(ragged([2, 9, 3]), batch_size=2, max_length=32)
    assert [b.shape[1] for b in ds] == [16, 8]


def test_pairs_are_bucketed_by_their_longest_component() -> None:
    questions = ragged([2, 3, 1, 2])
    answers = ragged([12, 2, 3, 20])
    ds = make_dataset(
        {"question": questions, "answer": answers},
        np.arange(4, dtype=np.int32),
        batch_size=4,
        max_length=24,
    )
    seen = []
    for features, targets in ds:
        width = features["question"].shape[1]
        assert features["answer"].shape[1] == width
        assert width in (8, 16, 24)
        for q, a, t in zip(
            features["question"].numpy(), features["answer"].numpy(), targets.numpy(), strict=True
        ):
            assert np.count_nonzero(q) == [2, 3, 1, 2][t]
            assert np.count_nonzero(a) == [12, 2, 3, 20][t]
            assert max(np.count_nonzero(q), np.count_nonzero(a)) <= width
            seen.append(int(t))
    assert sorted(seen) == [0, 1, 2, 3]


def test_every_ragged_component_is_padded_to_the_bucket_of_the_longest() -> None:
    questions = ragged([2, 3, 2, 9])
    answers = ragged([12, 1, 3, 2])  # longer than its question in the first row
    ds = make_dataset(
        {"token_ids": questions, "decoder_ids": answers},
        answers,
        batch_size=4,
        max_length=16,
    )
    seen = 0
    for features, targets in ds:
        width = features["token_ids"].shape[1]
        assert width in (8, 16)
        assert features["decoder_ids"].shape[1] == width == targets.shape[1]
        lengths = np.count_nonzero(targets.numpy(), axis=1)
        assert max(lengths.max(), np.count_nonzero(features["token_ids"].numpy(), axis=1).max()) <= width
        seen += len(lengths)
    assert seen == 4
    full = [t.numpy() for _, t in ds]
    assert sorted(int(np.count_nonzero(row)) for batch in full for row in batch) == [1, 2, 3, 12]
