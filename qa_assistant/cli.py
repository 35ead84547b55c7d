"""`qa-assistant`: the command line. One `_add_<command>` builds each subcommand's arguments;
its handler turns them into library calls and prints what they return.

User errors print one line (`error: ...`) and exit with status 2
(`errors.report_errors`); nothing else prints a traceback unless it is a bug.
Each handler imports the library modules it needs inside its body: start-up
time, since `qa-assistant ask` must not load the tasks, keras-hub or the training code.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import logging
import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from qa_assistant.config import Config, load_config, parse_override
from qa_assistant.errors import UserError, report_errors
from qa_assistant.layout import check_finished_run, resolve_export, validate_name

log = logging.getLogger("qa_assistant")


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
    return parser


def _add_train(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a model and evaluate it on held-out data")
    train.set_defaults(handler=_train, precheck=_precheck_train)
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
    tune.set_defaults(handler=_tune, precheck=_precheck_tune)
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
    tune.add_argument("--metric", help="objective metric (default: the task's first headline metric)")
    tune.add_argument("--seed", type=int, help="sampler seed (default: train.seed)")
    tune.add_argument("--output", metavar="DIR", help="the study's directory (default: runs/tune-<config>)")


def parse_duration(text: str) -> float:
    """`30m`, `2h`, `900s` or a number of minutes -> seconds.

    Raises:
        UserError: anything else, or a duration that is not positive.
    """
    units = {"s": 1, "m": 60, "h": 3600}
    raw = text.strip().lower()
    scale = units.get(raw[-1:])
    try:
        value = float(raw[:-1] if scale else raw) * (scale or 60)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UserError(f"--budget '{text}' is not a duration; expected e.g. 30m, 2h or 900s")
    return value


def _add_saved_models(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--saved-models", default="saved_models", metavar="DIR", help="export root (default: ./saved_models)"
    )


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("evaluate", help="metrics of a run or an export on a data file")
    evaluate.set_defaults(handler=_evaluate)
    evaluate.add_argument("--model", required=True, metavar="RUN_DIR_or_EXPORT")
    evaluate.add_argument("--data", required=True, metavar="F")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")


def _add_export(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="export a run as a SavedModel in TF Serving's layout")
    export.set_defaults(handler=_export, precheck=lambda args: check_finished_run(args.run))
    export.add_argument("--run", required=True, metavar="RUN_DIR")
    export.add_argument("--name", required=True, help="model name: saved_models/NAME/<version>")
    _add_saved_models(export)


def _add_index(commands: argparse._SubParsersAction) -> None:
    index = commands.add_parser(
        "index", help="add answers to a retrieval export's bank (new version, no retraining)"
    )
    index.set_defaults(handler=_index, precheck=lambda args: resolve_export(args.model))
    index.add_argument("--model", required=True, metavar="EXPORT", help="saved_models/NAME or a version")
    index.add_argument(
        "--answers", required=True, metavar="F", help="CSV/TSV/JSONL with question and answer columns"
    )
    index.add_argument("--name", required=True, help="model name: saved_models/NAME/<next version>")
    _add_saved_models(index)


def _add_word2vec(commands: argparse._SubParsersAction) -> None:
    word2vec = commands.add_parser("word2vec", help="train word vectors (skip-gram) on a text or Q/A file")
    word2vec.set_defaults(handler=_word2vec)
    word2vec.add_argument(
        "--data",
        required=True,
        metavar="F",
        help=".txt (one text per line), CSV/TSV/JSONL Q/A file or builtin:NAME",
    )
    word2vec.add_argument("--output", required=True, metavar="VECTORS", help="word2vec text file to write")
    word2vec.add_argument("--question-column", default="question", metavar="NAME")
    word2vec.add_argument("--answer-column", default="answer", metavar="NAME")
    for option, kind, default, what in _WORD2VEC_OPTIONS:
        word2vec.add_argument(f"--{option}", type=kind, default=default, help=f"{what} (default: {default})")


def _add_neighbours(commands: argparse._SubParsersAction) -> None:
    neighbours = commands.add_parser("neighbours", help="nearest neighbours of words in a vector file")
    neighbours.set_defaults(handler=_neighbours)
    neighbours.add_argument("--vectors", required=True, metavar="V", help="word2vec/GloVe text file")
    neighbours.add_argument("--top-k", type=int, default=10, metavar="K")
    neighbours.add_argument("words", nargs="+", metavar="WORD")


def _add_ask(commands: argparse._SubParsersAction) -> None:
    ask = commands.add_parser("ask", help="answer questions from an export")
    ask.set_defaults(handler=_ask, precheck=lambda args: resolve_export(args.model))
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
    board.set_defaults(handler=_tensorboard)
    board.add_argument("path", metavar="RUN_DIR_or_ROOT")
    board.add_argument(
        "--port", type=int, default=None, help="port (default: the first free one from 6006; 0: any free one)"
    )


def _add_chat(commands: argparse._SubParsersAction) -> None:
    chat = commands.add_parser("chat", help="interactive questions and answers from an export")
    chat.set_defaults(handler=_chat)
    chat.add_argument("--model", required=True, metavar="PATH")
    chat.add_argument("--top-k", type=int, default=None, metavar="K")
    _add_decoding_argument(chat)


def _add_benchmark(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "benchmark",
        help="training throughput vs the naive way, serving latency, peak memory (optionally the main command)",
        description="Run from the repository root. Writes its tables into BENCHMARKS.md ('Speed and scale').",
    )
    bench.set_defaults(handler=_benchmark)
    for flag, options, what in _BENCHMARK_OPTIONS:
        bench.add_argument(flag, **options, help=what)


# `qa-assistant benchmark` options: flag, argparse settings, help.
_BENCHMARK_OPTIONS = (
    ("--config", {"default": "experiments/configs/article_gru.yaml"}, "training throughput config"),
    ("--configs-dir", {"default": "experiments/configs"}, "where each task's served config is found"),
    (
        "--parts",
        {"default": None, "metavar": "P,Q"},
        "some of: training,serving,readme (default: training,serving; readme trains for minutes)",
    ),
    ("--repeats", {"type": int, "default": None}, "timed epochs per training variant (5)"),
    ("--requests", {"type": int, "default": None}, "timed single-question calls per export (300)"),
    ("--batches", {"type": int, "default": None}, "timed calls of 64 questions per export (30)"),
    ("--serving-epochs", {"type": int, "default": 1}, "epochs each served model is trained for"),
    ("--readme", {"default": "README.md"}, "the README whose main command is timed"),
    ("--workdir", {"default": None}, "keep runs and exports here (default: a temporary directory)"),
    ("--output", {"default": "BENCHMARKS.md"}, "file to write the section into; '-' prints only"),
    ("--quick", {"action": "store_true"}, "a small run to check it works: 2 repeats, 50 requests"),
    ("--provisional", {"action": "store_true"}, "mark the figures provisional (the machine was shared)"),
)


def _add_decoding_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--decoding",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="generation exports: a decoding option for this request, e.g. strategy=beam; repeat for more",
    )


def _decoding_options(items: list[str]) -> dict[str, object]:
    return dict(parse_override(item, what="decoding option", form="key=value") for item in items)


_WORD2VEC_OPTIONS = (
    ("dim", int, 100, "vector size"),
    ("window", int, 4, "context window"),
    ("negatives", int, 5, "negative samples per pair"),
    ("min-count", int, 2, "minimum word count"),
    ("subsample", float, 1e-3, "frequent-word dropping threshold, 0 = off"),
    ("epochs", int, 10, "passes over the text"),
    ("seed", int, 0, "random seed"),
)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)

    def run() -> int:
        if getattr(args, "precheck", None) is not None:
            args.precheck(args)  # a user error in seconds, before TensorFlow loads
        with _quiet_native_logs():
            # Loading prints C++ start-up chatter. The runtime itself starts later:
            # a multi-worker strategy must be created before it does.
            import tensorflow  # noqa: F401
        return args.handler(args)

    return report_errors(run)


def _train_overrides(args: argparse.Namespace) -> list[str]:
    overrides = list(args.overrides)
    if args.train_data:
        overrides.append(f"data.train={json.dumps(args.train_data)}")
    if args.test_data:
        overrides.append(f"data.test={json.dumps(args.test_data)}")
    return overrides


def _precheck_train(args: argparse.Namespace) -> None:
    """The model name, the config (keys, values, consistency) and the data files, without TensorFlow."""
    from qa_assistant.data.sources import check_files

    if args.name:
        validate_name(args.name)
    if args.repeats < 1:
        raise UserError(f"--repeats must be at least 1; got {args.repeats}")
    if args.repeats != 1 and args.folds is None:
        raise UserError(
            f"--repeats {args.repeats} repeats k-fold cross-validation; expected it with --folds K"
        )
    if not args.init_from:  # a base run or export changes the config first
        check_files(load_config(args.config, _train_overrides(args)).data)


def _train(args: argparse.Namespace) -> int:
    from qa_assistant.metrics.ranking import format_table
    from qa_assistant.serving import export_run
    from qa_assistant.training.runner import train_run

    overrides = _train_overrides(args)
    if args.init_from:
        from qa_assistant.personalization.sources import config_for_init

        config = config_for_init(args.config, overrides, args.init_from)
    else:
        config = load_config(args.config, overrides)
    output = args.output or _default_output(args.config)
    if args.folds is not None:
        return _train_folds(args, config, output)
    result = train_run(config, output, restart=args.restart)
    if not result.chief:
        print("worker done: the chief worker writes the run directory and any export")
        return 0
    metrics = result.metrics
    model_row = {k: v for k, v in metrics.items() if not k.startswith("baseline_")}
    baseline_row = {k[len("baseline_") :]: v for k, v in metrics.items() if k.startswith("baseline_")}
    keys = [k for k in model_row if k in baseline_row and not isinstance(model_row[k], str)]
    print(
        f"\nTest metrics ({metrics.get('num_questions', '?')} distinct held-out questions, "
        f"{metrics.get('num_test', '?')} rows):"
    )
    print(format_table({_model_label(config): model_row, "TF-IDF baseline": baseline_row}, keys))
    print(f"\nrun directory:   {result.run_dir}")
    print(f"metrics:         {result.run_dir / 'metrics.json'}")
    print(f"TensorBoard:     qa-assistant tensorboard {result.run_dir}")
    if args.name:
        version = export_run(result.run_dir, args.name, args.saved_models)
        print(f"exported:        {version}")
    else:
        print(f"export with:     qa-assistant export --run {result.run_dir} --name NAME")
    return 0


def _train_folds(args: argparse.Namespace, config: object, output: str) -> int:
    from qa_assistant.analysis.kfold import SUMMARY_JSON, run_folds, summary_table

    if args.name:
        raise UserError(
            "--name exports one model, but --folds trains one per fold; export a fold with "
            "qa-assistant export --run RUN_DIR/seed-S/fold-I --name NAME"
        )
    result = run_folds(config, output, folds=args.folds, repeats=args.repeats, restart=args.restart)
    print(f"\nTest metrics over {len(result.run_dirs)} runs ({args.folds} folds x {args.repeats} seeds):")
    print(summary_table(result.summary))
    print(f"\nruns:            {result.parent}/seed-*/fold-*")
    print(f"statistics:      {result.parent / SUMMARY_JSON}")
    print(f"TensorBoard:     qa-assistant tensorboard {result.parent}")
    return 0


def _precheck_tune(args: argparse.Namespace) -> None:
    """Config, data files, space and budget, without TensorFlow."""
    from qa_assistant.analysis.tune import check_space, default_space, parse_space
    from qa_assistant.data.sources import check_files

    parse_duration(args.budget)
    config = load_config(args.config, _train_overrides(args))
    check_files(config.data)
    space = parse_space(args.space) if args.space else default_space(config)
    check_space(config, space, args.folds)


def _tune(args: argparse.Namespace) -> int:
    from qa_assistant.analysis.tune import (
        BEST_YAML,
        TRIALS_TABLE,
        default_space,
        parse_space,
        trials_table,
        tune,
    )

    config = load_config(args.config, _train_overrides(args))
    space = parse_space(args.space) if args.space else default_space(config)
    output = args.output or str(
        Path("runs") / f"tune-{Path(args.config[-1]).stem if args.config else 'default'}"
    )
    print("searching:\n" + "\n".join(f"  {key} = {param.spec()}" for key, param in space.items()))
    result = tune(
        args.config,
        output,
        overrides=_train_overrides(args),
        space=space,
        folds=args.folds,
        trials=args.trials,
        budget_seconds=parse_duration(args.budget),
        metric=args.metric,
        seed=args.seed,
    )
    stopped = {"budget": "the time budget", "trials": f"{args.trials} finished trials"}[result.stopped_by]
    print(
        f"\n{len(result.trials)} trials, stopped by {stopped}; objective: mean {result.metric} over {args.folds} folds"
    )
    print(trials_table(result.trials, result.metric, result.best))
    if result.best is None:
        print("\nno trial finished yet: rerun the same command (with a larger --budget) to go on")
        return 0
    print(f"\nbest config:     {result.root / BEST_YAML}")
    print(f"trials:          {result.root / TRIALS_TABLE}")
    print(f"TensorBoard:     qa-assistant tensorboard {result.root / 'hparams'}")
    print(f"train it:        qa-assistant train --config {result.root / BEST_YAML}")
    return 0


def _model_label(config: Config) -> str:
    """How the train command's table names the model: `gru classify`, `SmolLM2 LoRA r8 lm`, ..."""
    if config.task.type == "lm":
        how = f"LoRA r{config.lm.lora_rank}" if config.lm.lora_rank else "full fine-tune"
        return f"{config.lm.preset} {how}"
    return f"{config.encoder.type} {config.task.type}"


def _default_output(configs: list[str]) -> str:
    stem = Path(configs[-1]).stem if configs else "default"
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    output, number = Path("runs") / f"{stem}-{stamp}", 1
    while output.exists():  # another run of this config started in the same second
        number += 1
        output = Path("runs") / f"{stem}-{stamp}-{number}"
    return str(output)


def _evaluate(args: argparse.Namespace) -> int:
    from qa_assistant.metrics.ranking import format_table
    from qa_assistant.serving.evaluate import evaluate_path

    metrics = evaluate_path(args.model, args.data)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(format_table({str(args.model): metrics}))
    return 0


def _export(args: argparse.Namespace) -> int:
    from qa_assistant.serving import export_run

    version = export_run(args.run, args.name, args.saved_models)
    print(version)
    return 0


def _index(args: argparse.Namespace) -> int:
    from qa_assistant.serving.index import index_answers

    result = index_answers(args.model, args.answers, args.name, args.saved_models)
    print(
        f"added {result.added_answers} answers and {result.added_questions} questions "
        f"({result.bank_size} answers in all)"
    )
    print(result.version_dir)
    return 0


def _word2vec(args: argparse.Namespace) -> int:
    from qa_assistant.embeddings import Word2VecConfig, read_text_corpus, save_vectors, train_word2vec

    settings = Word2VecConfig(
        **{o.replace("-", "_"): getattr(args, o.replace("-", "_")) for o, *_ in _WORD2VEC_OPTIONS}
    )
    texts = read_text_corpus(
        args.data, question_column=args.question_column, answer_column=args.answer_column
    )
    words, vectors = train_word2vec(texts, settings)
    save_vectors(args.output, words, vectors)
    print(f"{len(words)} words x {vectors.shape[1]} dimensions -> {args.output}")
    return 0


def _neighbours(args: argparse.Namespace) -> int:
    from qa_assistant.embeddings import VectorIndex

    _check_top_k(args.top_k)
    index = VectorIndex.from_file(args.vectors)
    for word in args.words:
        found = index.neighbours(word, args.top_k)
        if not found:
            raise UserError(f"'{word}' has no vector in '{args.vectors}' ({len(index.words)} words)")
        print(f"{word}: " + ", ".join(f"{w} ({s:.3f})" for w, s in found))
    return 0


def _ask(args: argparse.Namespace) -> int:
    from qa_assistant.serving import Assistant

    _check_top_k(args.top_k)
    options = _decoding_options(args.decoding)
    assistant = Assistant(args.model)
    for answer in assistant.ask_many(args.questions, top_k=args.top_k, **options):
        if args.json:
            print(json.dumps(answer.as_dict(), ensure_ascii=False))
        else:
            _print_answer(
                answer, args.top_k, prefix="" if len(args.questions) == 1 else f"Q: {answer.question}\nA: "
            )
    return 0


def _chat(args: argparse.Namespace) -> int:
    from qa_assistant.serving import Assistant

    _check_top_k(args.top_k)
    options = _decoding_options(args.decoding)
    assistant = Assistant(args.model)
    if isinstance(sys.stdin, io.TextIOWrapper):  # bytes that are not UTF-8 reach the model, not a traceback
        sys.stdin.reconfigure(errors="surrogateescape")
    print(f"chatting with {assistant.path} (empty line or Ctrl-D to quit)")
    while True:
        try:
            question = input("you> ")
        except EOFError:
            print()
            return 0
        if not question.strip():
            return 0
        _print_answer(assistant.ask(question, top_k=args.top_k, **options), args.top_k, prefix="assistant> ")


def _tensorboard(args: argparse.Namespace) -> int:
    from qa_assistant.analysis.board import serve

    return serve(args.path, args.port)


def _check_top_k(top_k: int | None) -> None:
    if top_k is not None and top_k < 1:
        raise UserError(f"--top-k must be at least 1; got {top_k}")


def _print_answer(answer: object, top_k: int | None, prefix: str = "") -> None:
    print(f"{prefix}{answer.answer}")
    if top_k:
        for rank, (text, score) in enumerate(answer.alternatives, start=1):
            print(f"  {rank}. [{score:.3f}] {text}")
        if answer.extra.get("matched_question"):  # retrieval: why this answer was chosen
            print(f"  closest known question: {answer.extra['matched_question']}")
        if answer.extra.get("quoted"):  # a grounded LM: why this answer is word for word a note
            print("  quoted: the retriever's first note, scored at or above lm.quote_above")


def _benchmark(args: argparse.Namespace) -> int:
    from qa_assistant.benchmark import DEFAULT_PARTS, BenchmarkOptions, run_benchmark

    defaults = {"repeats": 5, "requests": 300, "batches": 30, "parts": ",".join(DEFAULT_PARTS)}
    if args.quick:
        defaults = {"repeats": 2, "requests": 50, "batches": 5, "parts": ",".join(DEFAULT_PARTS)}
    given = {key: getattr(args, key) for key in defaults}
    chosen = {key: defaults[key] if value is None else value for key, value in given.items()}
    options = BenchmarkOptions(
        config=Path(args.config),
        configs_dir=Path(args.configs_dir),
        repeats=_positive("--repeats", chosen["repeats"]),
        requests=_positive("--requests", chosen["requests"]),
        batches=_positive("--batches", chosen["batches"]),
        serving_epochs=_positive("--serving-epochs", args.serving_epochs),
        parts=tuple(p.strip() for p in chosen["parts"].split(",") if p.strip()),
        readme=Path(args.readme),
        workdir=Path(args.workdir) if args.workdir else None,
        output=None if args.output == "-" else Path(args.output),
        command=_benchmark_command(args),
        note="Provisional (machine shared during measurement)" if args.provisional else None,
    )
    print(run_benchmark(options))
    if options.output is not None:
        print(f"\nwritten to {options.output}")
    return 0


def _benchmark_command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run, recorded in the table: only the options given."""
    defaults = vars(build_parser().parse_args(["benchmark"]))
    words = ["qa-assistant", "benchmark"]
    for key, value in vars(args).items():
        if key in ("command", "verbose") or value == defaults.get(key):
            continue
        flag = "--" + key.replace("_", "-")
        words += [flag] if value is True else [flag, str(value)]
    return shlex.join(words)


def _positive(flag: str, value: int) -> int:
    if value < 1:
        raise UserError(f"{flag} must be at least 1; got {value}")
    return value


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
    for noisy in ("absl", "tensorflow", "h5py"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ notices; Python errors still raise


@contextlib.contextmanager
def _quiet_native_logs() -> Iterator[None]:
    """Hides the C++ start-up chatter (oneDNN, CUDA probing) printed when TensorFlow loads.

    Set `QA_ASSISTANT_TF_LOGS=1` to see it.
    """
    if os.environ.get("QA_ASSISTANT_TF_LOGS") or not _has_fileno(sys.stderr):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _has_fileno(stream: object) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
