import numpy as np
import pytest

from qa_assistant.tasks.retrieval.bank import fallback_threshold


def test_no_threshold_from_too_few_questions_and_the_reason_says_so() -> None:
    scores = np.linspace(0.0, 1.0, 40)
    threshold, why = fallback_threshold(scores, scores > 0.5, keep=0.95, min_questions=100)
    assert threshold is None
    assert "40 validation questions" in why
    assert "100" in why
    assert "task.threshold_min_questions" in why
    assert fallback_threshold(scores, scores > 0.5, keep=0.95, min_questions=40)[0] is not None


def test_no_threshold_without_a_right_answer() -> None:
    threshold, why = fallback_threshold(np.ones(5), np.zeros(5, dtype=bool), keep=0.95, min_questions=1)
    assert threshold is None
    assert "none of the 5" in why


def test_no_threshold_when_it_would_withhold_right_answers_for_nothing() -> None:
    # The keep rule cuts at 0.2: it withholds the right answer at 0.1 and keeps both wrong ones.
    scores = np.array([0.1, 0.2, 0.9, 1.0, 0.95, 0.96])
    correct = np.array([True, True, True, True, False, False])
    threshold, why = fallback_threshold(scores, correct, keep=0.5, min_questions=1)
    assert threshold is None
    assert "would not raise" in why
    assert "60.0%" in why
    assert "66.7%" in why


@pytest.mark.parametrize("seed", range(20))
def test_an_applied_threshold_raises_the_accuracy_of_the_answered(seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = int(rng.integers(100, 400))
    correct = rng.random(count) < rng.uniform(0.2, 0.9)
    # Scores that only partly tell right from wrong, as a retriever's cosine does.
    scores = rng.normal(0.5 + rng.uniform(-0.1, 0.3) * correct, 0.15)
    keep = float(rng.uniform(0.5, 0.99))
    threshold, why = fallback_threshold(scores, correct, keep=keep, min_questions=100)
    if threshold is None:
        assert "would not raise" in why or "none of the" in why or "does not separate" in why
        return
    answered = scores >= threshold
    assert correct[answered].mean() >= correct.mean()
    assert np.mean(scores[correct] >= threshold) >= keep


def test_no_threshold_when_the_gain_on_validation_is_chance() -> None:
    """Shaped like builtin:chatterbot's validation: 102 questions, 25 right, a weak score; it withholds 8 wrong."""
    correct = np.array([True] * 25 + [False] * 77)
    scores = np.concatenate([np.linspace(0.9, 0.5, 24), [0.45], np.linspace(0.95, 0.5, 69), np.full(8, 0.4)])
    threshold, why = fallback_threshold(scores, correct, keep=0.96, min_questions=100)
    assert threshold is None
    assert "does not separate right from wrong answers on the 102 validation questions" in why
    assert "one-sided Fisher exact test p = 0.10, needs < 0.05" in why


def test_a_fallback_answer_reports_no_matched_question() -> None:
    import tensorflow as tf

    from qa_assistant.tasks.retrieval.bank import search

    answers = tf.constant(["Lunch is at noon.", "We close at five."])
    embeddings = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    known = tf.constant(["when is lunch?", "when do you close?"])
    bank = (answers, embeddings, known, embeddings, tf.constant([0, 1]))
    near, far = [0.96, 0.28], [0.6, 0.8]  # cosine 0.96 with lunch; 0.8 at best, below the threshold
    out = search(tf.constant([near, far]), bank, top_k=2, threshold=0.9, fallback="I don't know.")
    assert [a.decode() for a in out["answer"].numpy()] == ["Lunch is at noon.", "I don't know."]
    assert [q.decode() for q in out["matched_question"].numpy()] == ["when is lunch?", ""]
    np.testing.assert_allclose(out["matched_question_score"].numpy(), [0.96, 0.0], rtol=1e-6)
    assert out["top_k_answers"].numpy()[1, 0] == b"We close at five."  # the ranking itself is kept
    unguarded = search(tf.constant([far]), bank, top_k=1, threshold=None, fallback=None)
    assert unguarded["matched_question"].numpy()[0] == b"when do you close?"


def test_an_answer_that_repeats_the_request_is_never_returned() -> None:
    import tensorflow as tf

    from qa_assistant.tasks.retrieval.bank import BELOW_ANY_COSINE, mask_echoes, search

    # "how are you doing?" is in the bank as the answer to "hi", and embeds exactly as the request.
    answers = tf.constant(["How are you doing?", "I am doing well.", "Hello."])
    unit = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]], np.float32)
    bank = (answers, tf.constant(unit), tf.constant(["hi"]), tf.constant(unit[2:]), tf.constant([0]))
    request = np.array([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]], np.float32)  # the echo; an ordinary question
    out = search(tf.constant(request), bank, top_k=3, threshold=None, fallback=None)
    assert [a.decode() for a in out["answer"].numpy()] == ["I am doing well.", "Hello."]
    np.testing.assert_allclose(out["score"].numpy(), [0.8, 0.8], rtol=1e-6)
    assert out["top_k_answers"].numpy()[0, -1] == b"How are you doing?"  # last, below any cosine
    # Evaluation masks the same answers as the export's graph.
    scores = request @ unit.T
    masked = mask_echoes(scores)
    np.testing.assert_allclose(masked, mask_echoes(tf.constant(scores)).numpy())
    assert masked[0, 0] == BELOW_ANY_COSINE
    np.testing.assert_array_equal(masked[:, 1:], scores[:, 1:])  # a near paraphrase (0.8) is kept
    assert masked.dtype == scores.dtype
