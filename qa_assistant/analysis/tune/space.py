"""The search space of `qa-assistant tune` (`--space` items, or the default for a config) and the
configs a trial trains: the starting config with its values, reading K folds of the training pool."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qa_assistant.analysis.tune.outputs import POOL_FILE
from qa_assistant.atomic import write_text
from qa_assistant.config import Config, from_dict
from qa_assistant.errors import UserError


@dataclass(frozen=True)
class Param:
    """One searched key: a float or int range (optionally log-scaled) or a list of choices."""

    key: str
    kind: str  # "float", "int" or "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def spec(self) -> str:
        """The `--space` form of this parameter."""
        if self.kind == "choice":
            return ",".join(json.dumps(c) if not isinstance(c, str) else c for c in self.choices)
        prefix = ("log:" if self.log else "") + ("int:" if self.kind == "int" else "")
        return f"{prefix}{_number(self.low)}:{_number(self.high)}"


def _number(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_param(item: str) -> Param:
    """`KEY=SPEC`: `low:high` (uniform float), `log:low:high`, `int:low:high`, `log:int:low:high`,
    or `a,b,c` (choices, each read as YAML).

    Raises:
        UserError: no `=`, an empty key or spec, a bad range.

    Examples:

    >>> parse_param("train.learning_rate=log:1e-4:1e-2")
    Param(key='train.learning_rate', kind='float', low=0.0001, high=0.01, log=True, choices=())
    >>> parse_param("encoder.units=64,128").choices
    (64, 128)
    """
    key, sep, spec = item.partition("=")
    key, spec = key.strip(), spec.strip()
    form = "section.key=low:high, log:low:high, int:low:high or a,b,c"
    if not sep or "." not in key or not spec:
        raise UserError(f"search space item '{item}' is not of the form {form}")
    if ":" not in spec:
        return Param(key, "choice", choices=tuple(yaml.safe_load(v) for v in spec.split(",")))
    parts = spec.split(":")
    log_scale = parts[0] == "log"
    parts = parts[1:] if log_scale else parts
    kind = "int" if parts[0] == "int" else "float"
    parts = parts[1:] if kind == "int" else parts
    try:
        low, high = (int(p) if kind == "int" else float(p) for p in parts)
    except ValueError:
        raise UserError(f"search space item '{item}' is not of the form {form}") from None
    if not low < high or (log_scale and low <= 0):
        raise UserError(
            f"search space item '{item}': expected low < high{' and low > 0 on a log scale' if log_scale else ''}"
        )
    return Param(key, kind, low, high, log_scale)


def parse_space(items: Sequence[str]) -> dict[str, Param]:
    """`--space` items to `{key: Param}`; a key given twice is an error."""
    space: dict[str, Param] = {}
    for item in items:
        param = parse_param(item)
        if param.key in space:
            raise UserError(f"search space key '{param.key}' is given twice; expected each key once")
        space[param.key] = param
    return space


def default_space(config: Config) -> dict[str, Param]:
    """What a careful practitioner would search first for this config's task and encoder.

    Every config: the learning rate, log-uniform from a fifth to five times the
    config's. Encoders trained from scratch: encoder and embedding dropout and
    the width (half, same, double). Pretrained encoders: how many lower blocks
    stay frozen and, without early stopping, the number of epochs. Retrieval
    with a fixed temperature: the temperature; retrieval from trained weights
    (a preset or `init.source`): the weight averaging with them. Classification:
    label smoothing. LoRA: the rank.
    """
    lr = config.train.learning_rate
    space = [Param("train.learning_rate", "float", lr / 5, lr * 5, log=True)]
    encoder, task = config.encoder, config.task.type
    if task == "lm":
        space.append(Param("lm.lora_rank", "choice", choices=_with(config.lm.lora_rank, (4, 8, 16))))
    elif encoder.type == "pretrained":
        space.append(Param("encoder.freeze", "choice", choices=_with(encoder.freeze, ("none", "2", "4"))))
    else:
        space.append(Param("encoder.dropout", "float", 0.0, 0.5))
        space.append(Param("embedding.dropout", "float", 0.0, 0.5))
        units = encoder.units
        space.append(Param("encoder.units", "choice", choices=_with(units, (max(units // 2, 8), units * 2))))
    if task != "lm" and config.train.early_stopping == 0:
        epochs = config.train.epochs
        space.append(Param("train.epochs", "int", 1, max(4, 2 * epochs)))
    if task == "classify":
        space.append(Param("task.label_smoothing", "float", 0.0, 0.2))
    if task == "retrieve" and not config.task.learn_temperature:
        space.append(Param("task.temperature", "float", 0.02, 0.2, log=True))
    if task == "retrieve" and config.starts_trained:
        # Applied to each fold's finished model before it is scored, so the objective sees it.
        share = config.task.weight_averaging
        space.append(Param("task.weight_averaging", "choice", choices=_with(share, (1.0, 0.75, 0.5))))
    return {p.key: p for p in space}


def _with(value: Any, choices: tuple[Any, ...]) -> tuple[Any, ...]:
    """`choices` with the config's own value among them (first, as the starting trial uses it)."""
    return (value, *(c for c in choices if c != value))


def write_pool(config: Config, path: Path) -> int:
    """The pairs the search may use (the config's train + validation split) as JSONL; returns the row count.

    Raises:
        UserError: the config already sets `data.folds` (tune makes its own folds).
    """
    import pandas as pd

    from qa_assistant.data.dataset import load_qa_data  # deferred: pulls in TensorFlow via sources

    if config.data.folds:
        raise UserError(
            f"data.folds is {config.data.folds}; tune makes its own folds, expected a config without data.folds"
        )
    splits = load_qa_data(config).splits
    pool = pd.concat([splits.train, splits.validation], ignore_index=True)
    write_text(path, pool.to_json(orient="records", lines=True, force_ascii=False))
    return len(pool)


def trial_config(base: Config, pool: Path, values: Mapping[str, Any], folds: int) -> Config:
    """`base` with the searched values, reading the pool in K folds (the test file unused).

    Raises:
        UserError: a value the config refuses, naming the key.
    """
    data = base.to_dict()
    data["data"].update(
        train=str(pool), test=None, question_column="question", answer_column="answer", folds=folds, fold=0
    )
    return from_dict(_with_values(data, values))


def _with_values(data: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A config dict with `section.key` values set in it (in place; returned).

    Raises:
        UserError: a key that is not a config key.
    """
    for key, value in values.items():
        section, _, name = key.partition(".")
        if section not in data or name not in data[section]:
            raise UserError(
                f"search space key '{key}' is not a config key; expected section.key, e.g. train.epochs"
            )
        data[section][name] = value
    return data


def check_space(base: Config, space: Mapping[str, Param], folds: int) -> None:
    """Every key exists and every choice and range end passes the config's validation (before training).

    Raises:
        UserError: naming the key and the value refused.
    """
    for key, param in space.items():
        ends = param.choices if param.kind == "choice" else (param.low, param.high)
        for value in ends:
            value = int(value) if param.kind == "int" else value
            try:
                trial_config(base, Path(POOL_FILE), {key: value}, folds)
            except UserError as error:
                raise UserError(f"search space {key}={param.spec()}: {error}") from None


def best_config(base: Config, values: Mapping[str, Any]) -> Config:
    """The starting config (its own data settings) with a trial's values."""
    return from_dict(_with_values(base.to_dict(), values))
