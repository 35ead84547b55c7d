"""The `qa-assistant` argument parser: one `_add_<command>` per subcommand, each naming its handler
(`cli/commands.py`)."""

from __future__ import annotations

import argparse

from qa_assistant.cli.commands import (
    BENCHMARK_OPTIONS,
    WORD2VEC_OPTIONS,
    ask_command,
    benchmark_command,
    chat_command,
    evaluate_command,
    export_command,
    index_command,
    neighbours_command,
    precheck_ask,
    precheck_train,
    precheck_tune,
    tensorboard_command,
    train_command,
    tune_command,
    word2vec_command,
)
from qa_assistant.layout import check_finished_run, resolve_export


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qa-assistant",
        description="Train, evaluate, export and query a personal question-answering assistant.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_train,
        _add_tune,
        _add_evaluate,
        _add_export,
        _add_index,
        _add_word2vec,
        _add_neighbours,
        _add_ask,
        _add_tensorboard,
        _add_chat,
        _add_benchmark,
    ):
        add(commands)
    for command in commands.choices.values():  # its own usage for its own mistakes (`cli.main`)
        command.set_defaults(command_parser=command)
    return parser


def _add_train(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a model and evaluate it on held-out data")
    train.set_defaults(handler=train_command, precheck=precheck_train)
    _add_config_arguments(train)
    train.add_argument("--output", metavar="RUN_DIR", help="run directory (default: runs/<config>-<time>)")
    train.add_argument(
        "--restart", action="store_true", help="discard an existing run in RUN_DIR and start over"
    )
    folds = "k-fold cross-validation: one run per fold under RUN_DIR, with mean, std and 95%% CI"
    train.add_argument("--folds", type=int, metavar="K", help=folds)
    train.add_argument(
        "--repeats", type=int, default=1, metavar="R", help="with --folds: repeat with R seeds (default 1)"
    )
    train.add_argument(
        "--init-from",
        metavar="X",
        help="start from a run directory, an export or a keras-hub preset (personalisation); "
        "without --config the run takes X's config",
    )
    train.add_argument("--name", help="also export the trained model as saved_models/NAME/<version>")
    _add_saved_models(train)


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--config, --train-data, --test-data and --set: what train and tune read a config from."""
    merge = "config file; repeat to merge left to right"
    parser.add_argument("--config", action="append", default=[], metavar="YAML", help=merge)
    parser.add_argument(
        "--train-data", metavar="F", help="CSV/TSV/JSONL file, builtin:chatterbot or tfds:NAME"
    )
    parser.add_argument(
        "--test-data", metavar="F", help="use this file as the test split (no random split of it)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. encoder.type=lstm",
    )


def _add_tune(commands: argparse._SubParsersAction) -> None:
    tune = commands.add_parser(
        "tune",
        help="search a config's hyper-parameters by k-fold validation on the training data; writes best.yaml",
        description="Each trial trains K folds of the config's training data (its test split is left "
        "out); the objective is the mean held-out-fold metric. Rerun the same command to resume.",
    )
    tune.set_defaults(handler=tune_command, precheck=precheck_tune)
    _add_config_arguments(tune)
    tune.add_argument(
        "--space",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=SPEC",
        help="a searched key: low:high, log:low:high, int:low:high or a,b,c (default: a space for the "
        "config's task and encoder, printed at the start)",
    )
    tune.add_argument("--folds", type=int, default=3, metavar="K", help="folds of the objective (default 3)")
    tune.add_argument(
        "--trials", type=int, default=20, metavar="N", help="finished trials to stop at (default 20)"
    )
    tune.add_argument(
        "--budget",
        default="60m",
        metavar="TIME",
        help="wall-clock budget of this call: 30m, 2h, 900s (default 60m)",
    )
    tune.add_argument(
        "--confirm",
        type=int,
        default=3,
        metavar="N",
        help="score the N best trials and the starting config again on a second partition into K "
        "folds and choose on both (default 3; 0 chooses on the search's scores)",
    )
    tune.add_argument("--metric", help="objective metric (default: the task's first headline metric)")
    tune.add_argument("--seed", type=int, help="sampler seed (default: train.seed)")
    tune.add_argument("--output", metavar="DIR", help="the study's directory (default: runs/tune-<config>)")


def _add_saved_models(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--saved-models", default="saved_models", metavar="DIR", help="export root (default: ./saved_models)"
    )


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("evaluate", help="metrics of a run or an export on a data file")
    evaluate.set_defaults(handler=evaluate_command)
    evaluate.add_argument(
        "--model",
        required=True,
        metavar="RUN_DIR_or_EXPORT",
        help="a run directory, saved_models/NAME or a version",
    )
    evaluate.add_argument(
        "--data",
        required=True,
        metavar="F",
        help="CSV/TSV/JSONL (or a run's data/test.jsonl), builtin:NAME, tfds:NAME",
    )
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")


def _add_export(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="export a run as a SavedModel in TF Serving's layout")
    export.set_defaults(handler=export_command, precheck=lambda args: check_finished_run(args.run))
    export.add_argument(
        "--run", required=True, metavar="RUN_DIR", help="a finished run directory (qa-assistant train)"
    )
    export.add_argument("--name", required=True, help="model name: saved_models/NAME/<version>")
    _add_saved_models(export)


def _add_index(commands: argparse._SubParsersAction) -> None:
    index = commands.add_parser(
        "index", help="add answers to a retrieval export's bank (new version, no retraining)"
    )
    index.set_defaults(handler=index_command, precheck=lambda args: resolve_export(args.model))
    index.add_argument("--model", required=True, metavar="EXPORT", help="saved_models/NAME or a version")
    index.add_argument(
        "--answers", required=True, metavar="F", help="CSV/TSV/JSONL with question and answer columns"
    )
    index.add_argument("--name", required=True, help="model name: saved_models/NAME/<next version>")
    _add_saved_models(index)


def _add_word2vec(commands: argparse._SubParsersAction) -> None:
    word2vec = commands.add_parser("word2vec", help="train word vectors (skip-gram) on a text or Q/A file")
    word2vec.set_defaults(handler=word2vec_command)
    word2vec.add_argument(
        "--data",
        required=True,
        metavar="F",
        help=".txt (one text per line), CSV/TSV/JSONL Q/A file or builtin:NAME",
    )
    word2vec.add_argument("--output", required=True, metavar="VECTORS", help="word2vec text file to write")
    word2vec.add_argument("--question-column", default="question", metavar="NAME")
    word2vec.add_argument("--answer-column", default="answer", metavar="NAME")
    for option, kind, default, what in WORD2VEC_OPTIONS:
        word2vec.add_argument(f"--{option}", type=kind, default=default, help=f"{what} (default: {default})")


def _add_neighbours(commands: argparse._SubParsersAction) -> None:
    neighbours = commands.add_parser("neighbours", help="nearest neighbours of words in a vector file")
    neighbours.set_defaults(handler=neighbours_command)
    neighbours.add_argument("--vectors", required=True, metavar="V", help="word2vec/GloVe text file")
    neighbours.add_argument("--top-k", type=int, default=10, metavar="K")
    neighbours.add_argument("words", nargs="+", metavar="WORD")


def _add_ask(commands: argparse._SubParsersAction) -> None:
    ask = commands.add_parser("ask", help="answer questions from an export")
    ask.set_defaults(handler=ask_command, precheck=precheck_ask)
    ask.add_argument(
        "--model", required=True, metavar="PATH", help="saved_models/NAME or a version directory"
    )
    ask.add_argument("--top-k", type=int, default=None, metavar="K", help="also show the K best answers")
    ask.add_argument("--json", action="store_true", help="print JSON, one object per question")
    _add_decoding_argument(ask)
    ask.add_argument("questions", nargs="+", metavar="QUESTION")


def _add_tensorboard(commands: argparse._SubParsersAction) -> None:
    board = commands.add_parser(
        "tensorboard", help="TensorBoard on 127.0.0.1 for a run directory or a directory of runs"
    )
    board.set_defaults(handler=tensorboard_command)
    board.add_argument("path", metavar="RUN_DIR_or_ROOT")
    board.add_argument(
        "--port", type=int, default=None, help="port (default: the first free one from 6006; 0: any free one)"
    )


def _add_chat(commands: argparse._SubParsersAction) -> None:
    chat = commands.add_parser("chat", help="interactive questions and answers from an export")
    chat.set_defaults(handler=chat_command, precheck=precheck_ask)
    chat.add_argument(
        "--model", required=True, metavar="PATH", help="saved_models/NAME or a version directory"
    )
    chat.add_argument("--top-k", type=int, default=None, metavar="K", help="also show the K best answers")
    _add_decoding_argument(chat)


def _add_benchmark(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "benchmark",
        help="training throughput vs the naive way, serving latency, peak memory (optionally the main command)",
        description="Run from the repository root. Writes its tables into BENCHMARKS.md ('Speed and scale').",
    )
    bench.set_defaults(handler=benchmark_command)
    for flag, options, what in BENCHMARK_OPTIONS:
        bench.add_argument(flag, **options, help=what)


def _add_decoding_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--decoding",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="generation exports: a decoding option for this request, e.g. strategy=beam; repeat for more",
    )
