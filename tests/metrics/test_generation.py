"""Generation metrics: multi-reference text scores, masked loss/accuracy, likelihood sums."""

import math

import keras
import numpy as np
import pandas as pd
import pytest

from qa_assistant.metrics.generation import (
    MaskedTokenAccuracy,
    corpus_bleu,
    evaluate_generation,
    exact_match,
    likelihood_metrics,
    masked_loss,
    rouge_l,
    text_metrics,
)

TARGETS = np.array([[3, 2, 0, 0]])


def logits(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(1, 4, 5)).astype("float32")


def test_exact_match_accepts_any_reference() -> None:
    references = [["Hi there.", "Hello!"], ["Fine."], ["Yes."]]
    assert exact_match(references, ["Hello!", "fine.", "Yes."]) == pytest.approx(2 / 3)  # case counts
    assert exact_match([], []) == 0.0


def test_bleu_is_one_for_copies_zero_for_disjoint_text_and_uses_all_references() -> None:
    references = [["the cat sat on the mat today"], ["a dog ran in the park at noon"]]
    assert corpus_bleu(
        references, ["the cat sat on the mat today", "a dog ran in the park at noon"]
    ) == pytest.approx(1.0)
    assert corpus_bleu(references, ["zzz yyy xxx", "qqq www eee"]) == 0.0
    single = corpus_bleu([["the cat sat on the mat today"]], ["a cat sat on the mat today"])
    both = corpus_bleu(
        [["the cat sat on the mat today", "a cat sat on the mat today"]], ["a cat sat on the mat today"]
    )
    assert single < both == pytest.approx(1.0)


def test_rouge_l_takes_the_closest_reference_and_keeps_non_latin_words() -> None:
    # LCS of "a b c d" and "a b x d" is 3 of 4 words: precision = recall = F1 = 0.75.
    assert rouge_l([["a b c d"]], ["a b x d"]) == pytest.approx(0.75)
    assert rouge_l([["zzz", "a b c d"]], ["a b c d"]) == pytest.approx(1.0)
    assert rouge_l([["привет мир"]], ["привет мир"]) == pytest.approx(
        1.0
    )  # rouge-score's default drops these


def test_masked_loss_and_accuracy_ignore_padding() -> None:
    loss = masked_loss()
    base = logits()
    changed = base.copy()
    changed[0, 2:] = 50.0  # anything at padded positions
    per_token = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(TARGETS, base)
    expected = float(np.mean(np.asarray(per_token)[0, :2]))
    assert float(loss(TARGETS, base)) == pytest.approx(expected, rel=1e-6)
    assert float(loss(TARGETS, changed)) == pytest.approx(expected, rel=1e-6)
    right = np.zeros((1, 4, 5), "float32")
    right[0, 0, 3] = right[0, 1, 1] = 9.0  # first token right, second wrong
    for padded_guess in (0, 4):
        guesses = right.copy()
        guesses[0, 2:, padded_guess] = 9.0
        metric = MaskedTokenAccuracy()
        metric.update_state(TARGETS, guesses)
        assert float(metric.result()) == pytest.approx(0.5)


def test_masked_accuracy_round_trips() -> None:
    metric = MaskedTokenAccuracy(name="token_accuracy")
    assert MaskedTokenAccuracy.from_config(metric.get_config()).name == "token_accuracy"


def test_likelihood_metrics() -> None:
    out = likelihood_metrics(np.array([-2.0, -4.0]), np.array([2.0, 2.0]), np.array([1.0, 2.0]))
    assert out["perplexity"] == pytest.approx(math.exp(1.5))
    assert out["token_accuracy"] == pytest.approx(0.75)
    assert likelihood_metrics(np.zeros(0), np.zeros(0), np.zeros(0))["token_accuracy"] == 0.0


def test_evaluate_generation_asks_each_question_once_with_all_its_answers() -> None:
    frame = pd.DataFrame(
        {"question": ["hi", "hi", "bye", "how are you"], "answer": ["Hello.", "Hi!", "Bye.", "Fine."]}
    )
    asked: list[list[str]] = []

    def answer(questions: list[str]) -> dict:
        asked.append(list(questions))
        replies = {"hi": "Hi!", "bye": "Later.", "how are you": "Fine."}
        return {
            "answer": np.array([replies[q].encode() for q in questions]),
            "score": np.zeros(len(questions)),
        }

    def score(questions: list[str], answers: list[str]) -> dict:
        n = len(questions)
        return {
            "log_probability": -np.ones(n),
            "tokens": np.full(n, 2.0),
            "correct_tokens": np.ones(n),
            "unknown_tokens": np.array([1.0, 0.0] * n)[:n],
        }

    metrics, predictions = evaluate_generation(frame, answer, score, batch_size=2)
    assert asked == [["hi", "bye"], ["how are you"]]
    assert metrics["exact_match"] == pytest.approx(2 / 3)
    assert metrics["num_questions"] == 3
    assert metrics["perplexity"] == pytest.approx(math.exp(0.5))
    assert metrics["token_accuracy"] == pytest.approx(0.5)
    assert metrics["oov_rate"] == pytest.approx(2 / 8)  # one "[UNK]" in each call's first answer
    assert predictions["references"].tolist()[0] == ["Hello.", "Hi!"]
    assert predictions["exact"].tolist() == [True, False, True]


def test_a_model_that_declines_reports_its_coverage_and_which_rows_it_declined() -> None:
    frame = pd.DataFrame(
        {"question": ["hi", "who wrote hamlet", "bye", "hi"], "answer": ["Hi!", "?", "Bye.", "Hey"]}
    )

    def answer(questions: list[str]) -> dict:
        off = np.array(["hamlet" in q for q in questions])
        return {
            "answer": np.array(
                [b"I don't know." if o else q.encode() for q, o in zip(questions, off, strict=True)]
            ),
            "score": np.zeros(len(questions)),
            "declined": off,
        }

    metrics, predictions = evaluate_generation(frame, answer, None, batch_size=2)
    assert metrics["coverage"] == pytest.approx(2 / 3)  # per distinct question
    assert predictions["declined"].tolist() == [False, True, False]
    plain, rows = evaluate_generation(
        frame, lambda q: {k: v for k, v in answer(q).items() if k != "declined"}, None
    )
    assert "coverage" not in plain  # a model without the rule says nothing about it
    assert "declined" not in rows


def test_bleu_follows_sacrebleus_definition_with_a_variable_number_of_references() -> None:
    """Values worked out by hand from SacreBLEU's definition of corpus BLEU-4."""
    ref = "the cat sat on the mat"
    # n-gram precisions 5/6, 3/5, 2/4, 1/3; equal lengths, no brevity penalty.
    assert corpus_bleu([[ref]], ["the cat sat on a mat"]) == pytest.approx(
        (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    )
    # No 4-gram matches: exponential smoothing counts 1 / (2 * 3) instead of 0 (keras-hub gave 0.000).
    assert corpus_bleu([[ref]], ["the cat sat in a mat"]) == pytest.approx(
        (4 / 6 * 2 / 5 * 1 / 4 * 1 / 6) ** 0.25
    )
    # The brevity penalty takes the reference closest in length (7 words), not the shortest (1).
    assert corpus_bleu([[ref + " today", "cat"]], [ref]) == pytest.approx(math.exp(1 - 7 / 6))
    # Questions with two references and with one, in one corpus.
    assert corpus_bleu(
        [[ref, "a cat was on the mat"], ["it rained all day long"]],
        ["a cat was on the mat", "it rained all day long"],
    ) == pytest.approx(1.0)


def test_evaluation_reports_the_sacrebleu_signature() -> None:
    frame = pd.DataFrame({"question": ["q1", "q1", "q2"], "answer": ["yes it is", "sure it is", "no"]})
    metrics, _ = evaluate_generation(
        frame, lambda q: {"answer": [b"yes it is"] * len(q), "score": [0.0] * len(q)}, None
    )
    assert metrics["bleu_signature"].startswith("nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp|version:")


def test_the_generation_tasks_headline_metrics_are_what_their_evaluation_reports() -> None:
    # Sweeps, tables and `tune`'s default objective read these keys from every run.
    import pandas as pd

    from qa_assistant.metrics.generation import evaluate_generation
    from qa_assistant.tasks.generation.task import GenerationTask
    from qa_assistant.tasks.lm.task import LanguageModelTask
    from qa_assistant.training.callbacks import lower_is_better

    frame = pd.DataFrame({"question": ["q1", "q2"], "answer": ["the office opens at 9", "ten euros"]})

    def answer(questions):
        return {
            "answer": np.array([b"the office opens at 9"] * len(questions)),
            "score": np.zeros(len(questions)),
        }

    def score(questions, answers):
        n = len(questions)
        return {
            k: np.full(n, v)
            for k, v in (
                ("log_probability", -2.0),
                ("tokens", 4.0),
                ("correct_tokens", 2.0),
                ("unknown_tokens", 0.0),
            )
        }

    metrics, _ = evaluate_generation(frame, answer, score)
    for task in (GenerationTask, LanguageModelTask):
        assert set(task.headline_metrics) <= set(metrics), task.__name__
        assert not lower_is_better(task.headline_metrics[0])  # the objective tune maximises
    assert lower_is_better("perplexity")


def test_a_one_line_answer_matches_a_reference_that_keeps_its_lines_and_characters() -> None:
    """A generator writes one line; the data keep answers as written (lines, `10³`)."""
    references = [["Open 9 to 5.\nClosed on Sundays."], ["The tank holds 10³ litres."]]
    predictions = ["Open 9 to 5. Closed on Sundays.", "The tank holds 103 litres."]
    metrics = text_metrics(references, predictions)
    assert metrics["exact_match"] == 1.0
    assert metrics["rouge_l"] == pytest.approx(1.0)
    assert metrics["bleu"] == pytest.approx(1.0)
