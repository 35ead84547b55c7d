"""Seeded, honest train/validation/test splits.

For classification a held-out question is only a fair test when its class was
seen in training: in a personal FAQ most answers have a single phrasing, and a
random split would test answers the model could never predict. Two methods:

* `stratified` — every class has at least `MIN_PER_CLASS_FOR_STRATIFIED`
  examples: scikit-learn's `StratifiedGroupKFold` (stratified by class,
  grouped by question text so a question never sits on both sides).
* `known-answer` — otherwise: only questions whose class keeps at least one
  other phrasing in training are held out ("a new phrasing of a known
  question"); the split reports how many such questions exist.

For retrieval and generation the split is grouped by question, at random.

Questions are grouped by their phrasing key (`question_key`: lower case, no
punctuation, single spaces), not by their exact text: "will you die" and
"will you die?" are one question and never sit on both sides of a split.
A user-given test file is used as-is; validation is then carved from the
training data.

K-fold cross-validation (`folds=K`, `fold=i`) applies the same rules: the
seed fixes a partition of the data into K folds (stratified `StratifiedGroupKFold`
folds, known-answer folds in which every class keeps a phrasing outside each
fold, or K groups of distinct questions), fold `i` is the test split, and
validation is carved from the other folds as in a single split. Runs with the
same seed and K, one per fold, therefore test every eligible question once.
"""

from __future__ import annotations

import collections
import itertools
import logging
import warnings
from collections.abc import Iterator
from dataclasses import astuple, dataclass, field

import numpy as np
import pandas as pd

from qa_assistant.data.prepare import question_key
from qa_assistant.errors import UserError

log = logging.getLogger(__name__)

MIN_PER_CLASS_FOR_STRATIFIED = 5
# Distinct validation questions below which a choice made on them (the best epoch, a quote
# threshold) follows noise: one question moves an accuracy or a mean score by 2+ points.
FEW_VALIDATION_QUESTIONS = 50


def distinct_questions(frame: pd.DataFrame) -> int:
    """How many distinct questions a split holds (0 for an empty one, which may lack the column)."""
    return int(frame["question"].nunique()) if len(frame) else 0


@dataclass(frozen=True)
class SplitPlan:
    """How to split the data.

    Attributes:
        validation_fraction: share of the data for validation.
        test_fraction: share for the test split (ignored with a test file or folds).
        seed: seeds the split (and the fold partition).
        folds: `K` >= 2 for k-fold cross-validation, `0` for one split.
        fold: the fold that is the test split (0 to K-1).
    """

    validation_fraction: float
    test_fraction: float
    seed: int
    folds: int = 0
    fold: int = 0


@dataclass
class Splits:
    """The three splits and how they were made."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    method: str
    notes: dict[str, int] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}

    def held_out_keys(self) -> frozenset[str]:
        """Phrasing keys (`prepare.question_key`) of the validation and test questions."""
        held_out = pd.concat([self.validation["question"], self.test["question"]], ignore_index=True)
        return frozenset(question_key(held_out))


def _check_classes(frame: pd.DataFrame, target: str) -> None:
    classes = frame[target].unique()
    if len(classes) < 2:
        shown = repr(classes[0]) if len(classes) else "none"
        raise UserError(
            f"classification needs at least 2 distinct values of '{target}'; got {len(classes)} ({shown})"
        )


def _unseen_labels(train: pd.DataFrame, test: pd.DataFrame, target: str) -> int:
    """Test rows of a user-given test file whose class training never saw (warned; they count as errors)."""
    unseen = int((~test[target].isin(set(train[target]))).sum())
    if unseen:
        log.warning(
            "%d of %d test examples have a value of '%s' never seen in training; "
            "they cannot be predicted and count as errors",
            unseen,
            len(test),
            target,
        )
    _warn_overlap(train, test)
    return unseen


def split_classification(
    frame: pd.DataFrame, target: str, plan: SplitPlan, test_frame: pd.DataFrame | None = None
) -> Splits:
    """Splits for a classifier whose classes are the values of `target`.

    Args:
        frame: cleaned pairs (`question`, `target`).
        target: the column whose values are the classes.
        plan: shares, seed and fold (`SplitPlan`).
        test_frame: a user-given test split, used as-is.

    Raises:
        UserError: fewer than two classes, or no question can be held out.
    """
    validation_fraction, test_fraction, seed, folds, fold = astuple(plan)
    _check_classes(frame, target)
    fractions = [validation_fraction] if test_frame is not None else [test_fraction, validation_fraction]
    if test_frame is None and test_fraction <= 0:
        raise UserError("data.test_fraction is 0 and no --test-data was given; expected one of them")
    counts = frame[target].value_counts()
    keyed = _keyed(frame)  # positions are computed on phrasing keys, rows taken from `frame`
    if folds:
        method, parts, notes = _classification_fold(keyed, target, folds, fold, validation_fraction, seed)
    elif counts.min() >= MIN_PER_CLASS_FOR_STRATIFIED:
        method, parts, notes = "stratified", _stratified(keyed, target, fractions, seed), {}
    else:
        method = "known-answer"
        parts, notes = _known_answer(keyed, target, fractions, seed)
        if test_frame is None and len(parts[1]) == 0:
            if notes["eligible_questions"]:  # phrasings to spare, but the share rounds to none
                raise UserError(_too_few_message(frame["question"].nunique(), test_fraction))
            raise UserError(
                f"no question can be held out for testing: every '{target}' value has a single "
                "phrasing; to answer new questions from such data, rank the answers instead of "
                "classifying them (task.type: retrieve, e.g. experiments/configs/retrieval_pretrained.yaml); "
                "or give a test file with --test-data, add phrasings, or classify a column with repeated "
                "labels (e.g. data.target=category)"
            )
    train = frame.iloc[parts[0]].reset_index(drop=True)
    if test_frame is not None:
        validation = frame.iloc[parts[1]].reset_index(drop=True)
        test = test_frame.reset_index(drop=True)
        notes["unseen_test_labels"] = _unseen_labels(train, test, target)
    else:
        test = frame.iloc[parts[1]].reset_index(drop=True)
        validation = frame.iloc[parts[2]].reset_index(drop=True)
    if len(validation) == 0:
        log.warning("validation split is empty; early stopping will watch the training loss")
    return Splits(train, validation, test, method, notes)


def split_grouped(frame: pd.DataFrame, plan: SplitPlan, test_frame: pd.DataFrame | None = None) -> Splits:
    """Random split grouped by question phrasing key (retrieval, generation).

    With `folds` = K, the shuffled distinct questions form K near-equal
    folds; fold `fold` is the test split and validation comes from the rest.
    """
    validation_fraction, test_fraction, seed, folds, fold = astuple(plan)
    rng = np.random.default_rng(seed)
    keys = question_key(frame["question"])
    questions = np.asarray(keys.unique(), dtype=object)
    rng.shuffle(questions)
    if folds:
        if folds > len(questions):
            raise UserError(
                f"data.folds is {folds} but there are only {len(questions)} distinct questions; "
                f"expected at most {len(questions)} folds"
            )
        tested = set(np.array_split(questions, folds)[fold])
        rest = [q for q in questions if q not in tested]
        held = [tested, set(rest[: round(validation_fraction * len(questions))])]
    else:
        fractions = [validation_fraction] if test_frame is not None else [test_fraction, validation_fraction]
        sizes = [round(f * len(questions)) for f in fractions]
        bounds = np.cumsum([0, *sizes])
        held = [set(questions[bounds[i] : bounds[i + 1]]) for i in range(len(sizes))]
    masks = [keys.isin(h).to_numpy() for h in held]
    train = frame.loc[~np.logical_or.reduce(masks)].reset_index(drop=True)
    parts = [frame.loc[m].reset_index(drop=True) for m in masks]
    if test_frame is not None:
        test, validation = test_frame.reset_index(drop=True), parts[0]
        _warn_overlap(train, test)
    else:
        test, validation = parts
        if test.empty:  # metrics over no questions would read as a score of 0
            raise UserError(_too_few_message(len(questions), test_fraction))
    if train.empty:
        raise UserError(
            f"no question is left to train on: {len(questions)} distinct questions, "
            f"data.validation_fraction {validation_fraction}; expected more pairs or a smaller fraction"
        )
    notes = {"folds": folds, "fold": fold} if folds else {}
    return Splits(train, validation, test, "grouped-random", notes)


def _too_few_message(questions: int, test_fraction: float) -> str:
    return (
        f"no question can be held out for testing: data.test_fraction {test_fraction} of {questions} "
        "distinct questions rounds to none; expected more pairs, a larger data.test_fraction, "
        "or a test file (--test-data)"
    )


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with each question replaced by its phrasing key, so that groups follow the key."""
    return frame.assign(question=question_key(frame["question"]))


def _warn_overlap(train: pd.DataFrame, test: pd.DataFrame) -> None:
    overlap = int(question_key(test["question"]).isin(set(question_key(train["question"]))).sum())
    if overlap:
        log.warning(
            "%d test questions also appear in the training data (ignoring case, punctuation and "
            "spacing); their metrics do not measure generalisation",
            overlap,
        )


def _stratified(frame: pd.DataFrame, target: str, fractions: list[float], seed: int) -> list[np.ndarray]:
    remaining = np.arange(len(frame))
    left = 1.0
    parts = []
    for fraction in fractions:
        if fraction <= 0:
            parts.append(np.array([], dtype=int))
            continue
        sub = frame.iloc[remaining]
        # One fold is held out. scikit-learn refuses more folds than the
        # largest class has members; classes smaller than the fold count are
        # simply absent from some folds (they stay in training).
        folds = max(2, min(round(left / fraction), int(sub[target].value_counts().max())))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "least populated class" notices
            keep, held = _hold_out_fold(sub, target, folds, seed)
        parts.append(remaining[held])
        remaining = remaining[keep]
        left -= fraction
    return [remaining, *parts]


# Above this many distinct questions StratifiedGroupKFold's per-group Python loop
# dominates (measured: ~110 s for 200,000 questions on 2 busy cores).
FAST_SPLIT_QUESTIONS = 20_000


def _hold_out_fold(
    sub: pd.DataFrame, target: str, folds: int, seed: int, index: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """`(keep, held)` positions in `sub`: stratified fold `index`, a question never on both sides.

    When there are many questions and each has a single class, stratifying
    the distinct questions with `StratifiedKFold` is the same split rule and
    runs in seconds; otherwise `StratifiedGroupKFold` handles questions that
    carry several classes.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold  # deferred: start-up time

    classes_per_question = sub.groupby("question", sort=False)[target]
    if classes_per_question.ngroups > FAST_SPLIT_QUESTIONS and classes_per_question.nunique().max() == 1:
        label = classes_per_question.first()
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        _, held_questions = _nth(splitter.split(label.index, label.to_numpy()), index)
        held = sub["question"].isin(label.index[held_questions]).to_numpy()
        return np.flatnonzero(~held), np.flatnonzero(held)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return _nth(splitter.split(sub, sub[target], groups=sub["question"]), index)


def _nth(folds: Iterator[tuple[np.ndarray, np.ndarray]], index: int) -> tuple[np.ndarray, np.ndarray]:
    return next(itertools.islice(folds, index, None))


def _known_answer(
    frame: pd.DataFrame, target: str, fractions: list[float], seed: int
) -> tuple[list[np.ndarray], dict[str, int]]:
    """Holds out questions whose every class keeps another phrasing in training."""
    labels_of = frame.groupby("question", sort=True)[target].agg(lambda s: sorted(set(s)))
    phrasings = collections.Counter(label for labels in labels_of for label in labels)
    eligible = int(sum(all(phrasings[lab] >= 2 for lab in labels) for labels in labels_of))
    holdable = sum(n - 1 for n in phrasings.values())
    wanted = [round(f * len(labels_of)) for f in fractions]
    total_wanted = sum(wanted)
    if total_wanted > holdable:
        # Not enough phrasings for the requested fractions: share what there is.
        wanted = [int(holdable * w / total_wanted) for w in wanted]
        wanted[0] += holdable - sum(wanted)
    order = np.random.default_rng(seed).permutation(len(labels_of))
    assigned: list[list[str]] = [[] for _ in fractions]
    for position in order:
        question, labels = labels_of.index[position], labels_of.iloc[position]
        if not all(phrasings[lab] >= 2 for lab in labels):
            continue
        behind = [i for i in range(len(fractions)) if len(assigned[i]) < wanted[i]]
        if not behind:
            break
        part = min(behind, key=lambda i: len(assigned[i]) / max(wanted[i], 1))
        assigned[part].append(question)
        for lab in labels:
            phrasings[lab] -= 1
    held_sets = [set(a) for a in assigned]
    held_all = set().union(*held_sets)
    question = frame["question"]
    parts = [np.flatnonzero(~question.isin(held_all).to_numpy())]
    parts += [np.flatnonzero(question.isin(h).to_numpy()) for h in held_sets]
    notes = {"eligible_questions": eligible, "holdable_questions": holdable}
    log.info(
        "known-answer split: %d of %d questions have an answer with another phrasing; held out %s",
        eligible,
        len(labels_of),
        " + ".join(str(len(a)) for a in assigned),
    )
    return parts, notes


def _classification_fold(
    frame: pd.DataFrame, target: str, folds: int, fold: int, validation_fraction: float, seed: int
) -> tuple[str, list[np.ndarray], dict[str, int]]:
    """`(method, [train, test, validation] positions, notes)` of fold `fold` of `folds`.

    The split rule is the single split's: stratified folds when every class
    has enough examples, known-answer folds otherwise. Validation is carved
    from the other folds with the single split's rule, its fraction scaled so
    that it stays `validation_fraction` of all the data.
    """
    within_rest = validation_fraction * folds / (folds - 1)
    notes = {"folds": folds, "fold": fold}
    if frame[target].value_counts().min() >= MIN_PER_CLASS_FOR_STRATIFIED:
        largest = int(frame[target].value_counts().max())
        if folds > min(largest, frame["question"].nunique()):
            raise UserError(
                f"data.folds is {folds} but the largest class of '{target}' has {largest} examples; "
                f"expected at most {largest} folds"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "least populated class" notices
            rest, test = _hold_out_fold(frame, target, folds, seed, index=fold)
        train, validation = _stratified(frame.iloc[rest], target, [within_rest], seed)
        return "stratified", [rest[train], test, rest[validation]], notes
    rest, test, fold_notes = _known_answer_fold(frame, target, folds, fold, seed)
    if len(test) == 0:
        raise UserError(
            f"fold {fold} of {folds} holds no question: only {fold_notes['holdable_questions']} questions "
            f"have an answer with another phrasing; use fewer folds or add phrasings"
        )
    (train, validation), _ = _known_answer(frame.iloc[rest], target, [within_rest], seed)
    return "known-answer", [rest[train], test, rest[validation]], {**fold_notes, **notes}


def _known_answer_fold(
    frame: pd.DataFrame, target: str, folds: int, fold: int, seed: int
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """`(rest, test)` positions: known-answer folds, every class keeps a phrasing outside each fold.

    Questions are dealt, in a seeded order, to the emptiest fold that can
    still take them: a fold may hold at most n - 1 of a class's n
    phrasings. Questions of single-phrasing classes are never tested.
    """
    labels_of = frame.groupby("question", sort=True)[target].agg(lambda s: sorted(set(s)))
    phrasings = collections.Counter(label for labels in labels_of for label in labels)
    held = [collections.Counter() for _ in range(folds)]
    assigned: list[list[str]] = [[] for _ in range(folds)]
    for position in np.random.default_rng(seed).permutation(len(labels_of)):
        question, labels = labels_of.index[position], labels_of.iloc[position]
        room = [f for f in range(folds) if all(held[f][lab] < phrasings[lab] - 1 for lab in labels)]
        if not room:
            continue
        chosen = min(room, key=lambda f: len(assigned[f]))
        assigned[chosen].append(question)
        held[chosen].update(labels)
    tested = frame["question"].isin(set(assigned[fold])).to_numpy()
    notes = {
        "eligible_questions": int(sum(all(phrasings[lab] >= 2 for lab in labels) for labels in labels_of)),
        "holdable_questions": sum(len(a) for a in assigned),
    }
    log.info(
        "known-answer %d-fold split: %s questions per fold; fold %d is the test split",
        folds,
        " / ".join(str(len(a)) for a in assigned),
        fold,
    )
    return np.flatnonzero(~tested), np.flatnonzero(tested), notes
