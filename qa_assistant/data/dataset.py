"""From a config and file names to cleaned, split question/answer data."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd

from qa_assistant.config import Config
from qa_assistant.data.prepare import CleanReport, clean_pairs, either, settle_forms
from qa_assistant.data.sources import SourceInfo, label_columns, load_configured
from qa_assistant.data.split import SplitPlan, Splits, split_classification, split_grouped
from qa_assistant.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class QAData:
    """Everything a task needs to know about its data.

    Attributes:
        splits: cleaned train/validation/test frames.
        target: the column a classifier predicts (`answer` or e.g. `category`).
        sources: what was read, with hashes of files.
        reports: per source, row counts through cleaning.
    """

    splits: Splits
    target: str
    sources: list[SourceInfo] = field(default_factory=list)
    reports: dict[str, CleanReport] = field(default_factory=dict)

    def all_frames(self) -> pd.DataFrame:
        s = self.splits
        return pd.concat([s.train, s.validation, s.test], ignore_index=True)


def load_qa_data(config: Config) -> QAData:
    """Loads `config.data.train` (and `config.data.test`), cleans and splits them.

    Raises:
        UserError: for any problem with the inputs.
    """
    data = config.data
    target = data.target
    labels = label_columns(target)
    frames: dict[str, pd.DataFrame] = {}
    sources, reports = [], {}
    for role, spec in (("train", data.train), ("test", data.test)):
        if spec is None:
            continue
        raw, info = load_configured(data, spec, default_split=role)
        clean, report = clean_pairs(
            raw,
            config.text,
            deduplicate=data.deduplicate,
            label_columns=labels,
            header=(data.question_column, data.answer_column),
            source=spec,
        )
        if clean.empty:
            checked = ["question", "answer", *(repr(c) for c in labels)]
            raise UserError(
                f"'{spec}' has no usable rows: every row had an empty {either(checked)} after cleaning"
            )
        if role == "test":  # an answer written with other spacing than in training is the same answer
            for column in dict.fromkeys(["answer", *labels]):
                clean[column] = settle_forms(
                    clean[column].tolist(), config.text, frames["train"][column].tolist()
                )
        frames[role], reports[spec] = clean, report
        sources.append(info)
    test_frame = frames.get("test")
    plan = SplitPlan(data.validation_fraction, data.test_fraction, config.train.seed, data.folds, data.fold)
    if config.task.type == "classify":
        splits = split_classification(frames["train"], target, plan, test_frame)
    else:
        splits = split_grouped(frames["train"], plan, test_frame)
    return QAData(splits=splits, target=target, sources=sources, reports=reports)
