"""The handlers of the `qa-assistant` subcommands: each turns its parsed arguments into library calls
and prints what they return. A `precheck_*` runs before TensorFlow loads, so a user error shows in seconds."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import io
import json
import logging
import shlex
import sys
from pathlib import Path

from qa_assistant.config import (
    Config,
    DecodingConfig,
    answer_limit,
    check_decoding_options,
    load_config,
    parse_override,
)
from qa_assistant.errors import UserError, closest
from qa_assistant.layout import CONFIG_FILE, EXTRA_DIR, check_grounding, resolve_export, validate_name
from qa_assistant.presets import check_installed

log = logging.getLogger(__name__)


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


def _decoding_options(items: list[str]) -> dict[str, object]:
    return dict(parse_override(item, what="decoding option", form="key=value") for item in items)


def precheck_ask(args: argparse.Namespace) -> None:
    """`ask` / `chat`: the export, `--top-k` and the decoding options, before the export loads.

    The export's signature stays the judge (`Assistant.check_options`); this catches
    what its `config.yaml` already tells: an export that takes no options, a name that
    is no `decoding` key, a value that key refuses.
    """
    export = resolve_export(args.model)
    _check_top_k(args.top_k)
    options = _decoding_options(args.decoding)
    if not options:
        return
    saved = export / EXTRA_DIR / CONFIG_FILE
    config = load_config([saved]) if saved.is_file() else None
    if config is not None and config.task.type not in ("generate", "lm"):
        raise UserError(
            f"'{export}' takes no decoding options ({', '.join(sorted(options))}); only a generation export does"
        )
    names = [f.name for f in dataclasses.fields(DecodingConfig)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise UserError(
            f"unknown decoding option(s) {', '.join(unknown)}{closest(unknown[0], names)}; "
            f"expected any of: {', '.join(sorted(names))}"
        )
    check_decoding_options(options, None if config is None else answer_limit(config))


WORD2VEC_OPTIONS = (
    ("dim", int, 100, "vector size"),
    ("window", int, 4, "context window"),
    ("negatives", int, 5, "negative samples per pair"),
    ("min-count", int, 2, "minimum word count"),
    ("subsample", float, 1e-3, "frequent-word dropping threshold, 0 = off"),
    ("epochs", int, 10, "passes over the text"),
    ("seed", int, 0, "random seed"),
)


def _train_overrides(args: argparse.Namespace) -> list[str]:
    overrides = list(args.overrides)
    if args.train_data:
        overrides.append(f"data.train={json.dumps(args.train_data)}")
    if args.test_data:
        overrides.append(f"data.test={json.dumps(args.test_data)}")
    return overrides


def precheck_train(args: argparse.Namespace) -> None:
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
        config = load_config(args.config, _train_overrides(args))
        check_files(config.data)
        _check_model_sources(config)


def _check_model_sources(config: Config) -> None:
    """The model packages a config names are installed and its grounding run is there."""
    if config.encoder.type == "pretrained" and config.encoder.preset:
        check_installed(config.encoder.preset)
    if config.task.type == "lm":
        check_installed(config.lm.preset)
        check_grounding(config.lm.grounding)


def train_command(args: argparse.Namespace) -> int:
    from qa_assistant.metrics.ranking import format_table
    from qa_assistant.serving import export_run
    from qa_assistant.serving.export import current_export
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
    # Retrieval's fallback and an LM's declining rule withhold answers; the baseline never does.
    if "coverage" in model_row and "coverage" not in keys:
        keys.append("coverage")
    questions, rows = metrics.get("num_questions", "?"), metrics.get("num_test", "?")
    print(
        f"\nTest metrics ({questions} distinct held-out question{'' if questions == 1 else 's'}, "
        f"{rows} row{'' if rows == 1 else 's'}):"
    )
    print(format_table({_model_label(config): model_row, "TF-IDF baseline": baseline_row}, keys))
    print(f"\nrun directory:   {result.run_dir}")
    print(f"metrics:         {result.run_dir / 'metrics.json'}")
    print(f"TensorBoard:     qa-assistant tensorboard {result.run_dir}")
    if args.name:
        # A finished run asked again: its export stands, rather than an identical new version.
        current = (
            current_export(result.run_dir, args.name, args.saved_models) if result.already_finished else None
        )
        if current:
            print(f"exported:        {current} (this run's export already; no new version)")
        else:
            print(f"exported:        {export_run(result.run_dir, args.name, args.saved_models)}")
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


def precheck_tune(args: argparse.Namespace) -> None:
    """Config, data files, space and budget, without TensorFlow."""
    from qa_assistant.analysis.tune import check_space, default_space, parse_space
    from qa_assistant.data.sources import check_files

    parse_duration(args.budget)
    config = load_config(args.config, _train_overrides(args))
    check_files(config.data)
    _check_model_sources(config)
    space = parse_space(args.space) if args.space else default_space(config)
    check_space(config, space, args.folds)


def tune_command(args: argparse.Namespace) -> int:
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
        confirm=args.confirm,
    )
    stopped = {"budget": "the time budget", "trials": f"{args.trials} finished trials"}[result.stopped_by]
    print(
        f"\n{len(result.trials)} trials, stopped by {stopped}; objective: mean {result.metric} over {args.folds} folds"
    )
    print(trials_table(result.trials, result.metric, result.best))
    if result.best is None:
        print("\nno trial finished yet: rerun the same command (with a larger --budget) to go on")
        return 0
    if result.best.confirmed:
        print(
            f"\nchosen on a second partition too: trial {result.best.number}, {result.metric} "
            f"{result.best.both:.4f} over both (search alone {result.best.mean:.4f})"
        )
    print(f"\nbest config:     {result.root / BEST_YAML}")
    print(f"trials:          {result.root / TRIALS_TABLE}")
    print(f"TensorBoard:     qa-assistant tensorboard {result.root / 'hparams'}")
    train = f"qa-assistant train --config {result.root / BEST_YAML}"
    if config.task.type == "classify" and config.task.ensemble == 1:
        # Measured (BENCHMARKS.md, "The final model as three classifiers"): a tuned config's gain showed
        # on every training seed with three classifiers, on one of three with a single one.
        print(f"train it:        {train} --set task.ensemble=3")
        print("                 (three classifiers side by side: the result depends less on the seed)")
    else:
        print(f"train it:        {train}")
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


def evaluate_command(args: argparse.Namespace) -> int:
    from qa_assistant.metrics.ranking import format_table
    from qa_assistant.serving.evaluate import evaluate_path

    metrics = evaluate_path(args.model, args.data)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    # Text facts (sacreBLEU's signature holds `|`) go under the table, not into its cells.
    numbers = [k for k, v in metrics.items() if not isinstance(v, str)]
    print(format_table({str(args.model): metrics}, numbers))
    for key, value in metrics.items():
        if key not in numbers:
            print(f"{key}: {value}")
    return 0


def export_command(args: argparse.Namespace) -> int:
    from qa_assistant.serving import export_run

    version = export_run(args.run, args.name, args.saved_models)
    print(version)
    return 0


def index_command(args: argparse.Namespace) -> int:
    from qa_assistant.serving.index import index_answers

    result = index_answers(args.model, args.answers, args.name, args.saved_models)
    print(
        f"added {result.added_answers} answers and {result.added_questions} questions "
        f"({result.bank_size} answers in all)"
    )
    print(result.version_dir)
    return 0


def word2vec_command(args: argparse.Namespace) -> int:
    from qa_assistant.embeddings import Word2VecConfig, read_text_corpus, save_vectors, train_word2vec

    settings = Word2VecConfig(
        **{o.replace("-", "_"): getattr(args, o.replace("-", "_")) for o, *_ in WORD2VEC_OPTIONS}
    )
    texts = read_text_corpus(
        args.data, question_column=args.question_column, answer_column=args.answer_column
    )
    words, vectors = train_word2vec(texts, settings)
    save_vectors(args.output, words, vectors)
    print(f"{len(words)} words x {vectors.shape[1]} dimensions -> {args.output}")
    return 0


def neighbours_command(args: argparse.Namespace) -> int:
    from qa_assistant.embeddings import VectorIndex

    _check_top_k(args.top_k)
    index = VectorIndex.from_file(args.vectors)
    for word in args.words:
        found = index.neighbours(word, args.top_k)
        if not found:
            raise UserError(f"'{word}' has no vector in '{args.vectors}' ({len(index.words)} words)")
        print(f"{word}: " + ", ".join(f"{w} ({s:.3f})" for w, s in found))
    return 0


def ask_command(args: argparse.Namespace) -> int:
    from qa_assistant.serving import Assistant

    options = _decoding_options(args.decoding)  # checked with --top-k by `precheck_ask`
    assistant = Assistant(args.model)
    answers = assistant.ask_many(args.questions, top_k=args.top_k, decoding=options)
    returned = max((len(a.alternatives) for a in answers), default=0)
    if args.top_k and returned < args.top_k:
        log.warning(
            "--top-k %d: the export returned %d answers per question at most (its export.top_k, "
            "or all its bank, classes or beams)",
            args.top_k,
            returned,
        )
    for answer in answers:
        if args.json:
            print(json.dumps(answer.as_dict(), ensure_ascii=False))
        else:
            _print_answer(
                answer, args.top_k, prefix="" if len(args.questions) == 1 else f"Q: {answer.question}\nA: "
            )
    return 0


def chat_command(args: argparse.Namespace) -> int:
    from qa_assistant.serving import Assistant

    options = _decoding_options(args.decoding)  # checked with --top-k by `precheck_ask`
    assistant = Assistant(args.model)
    if options:
        assistant.check_options(options)  # a bad option is refused before the first prompt
    if isinstance(sys.stdin, io.TextIOWrapper):  # bytes that are not UTF-8 reach the model, not a traceback
        sys.stdin.reconfigure(errors="surrogateescape")
    print(f"chatting with {assistant.path} (empty line or Ctrl-D to quit)")
    while True:
        try:
            question = input("you> ")
            if not sys.stdin.isatty():  # piped questions: the transcript shows each beside its prompt
                print(question)
        except EOFError:
            print()
            return 0
        if not question.strip():
            return 0
        _print_answer(
            assistant.ask(question, top_k=args.top_k, decoding=options), args.top_k, prefix="assistant> "
        )


def tensorboard_command(args: argparse.Namespace) -> int:
    from qa_assistant.analysis.board import serve

    return serve(args.path, args.port)


def _check_top_k(top_k: int | None) -> None:
    if top_k is not None and top_k < 1:
        raise UserError(f"--top-k must be at least 1; got {top_k}")


def _print_answer(answer: object, top_k: int | None, prefix: str = "") -> None:
    print(f"{prefix}{answer.answer}")
    if answer.extra.get("finished") is False:  # generation; on stderr, so stdout stays the answer
        sys.stdout.flush()  # the note follows its answer when both streams reach one terminal
        print(
            f"  (unfinished: cut at {answer.extra.get('length', '?')} tokens, the decoding max_length "
            "or the model's limit)",
            file=sys.stderr,
        )
    if top_k:
        for rank, (text, score) in enumerate(answer.alternatives, start=1):
            head = f"  {rank}. [{score:.3f}] "
            # An answer's further lines under its first, so that the ranked list stays readable.
            print(head + text.replace("\n", "\n" + " " * len(head)))
        if answer.extra.get("matched_question"):  # retrieval: why this answer was chosen
            print(f"  closest known question: {answer.extra['matched_question']}")
        elif _fell_back(answer):
            print(
                f"  fell back: the best answer scored {answer.alternatives[0][1]:.3f}, below the export's "
                "fallback threshold (set by task.threshold or task.decline_keep)"
            )
        if answer.extra.get("quoted"):  # a grounded LM: why this answer is word for word a note
            print("  quoted: the retriever's first note, scored at or above lm.quote_above")
        if answer.extra.get("declined"):  # a grounded LM: why it did not answer
            print("  declined: the retriever's first note scored below lm.decline_below (off-topic)")


def _fell_back(answer: object) -> bool:
    """A retrieval export's fallback answer (its `answered` output is false).

    Only retrieval exports match known questions (a grounded LM also says
    `answered`, but its own "declined" line says why). Exports made before
    `answered`: not the best-ranked answer (an answered request keeps it;
    `tasks/retrieval/bank.py`, `search`).
    """
    ranked = answer.alternatives
    if "matched_question" not in answer.extra or not ranked:
        return False
    if "answered" in answer.extra:
        return not answer.extra["answered"]
    return answer.answer != ranked[0][0]


def benchmark_command(args: argparse.Namespace) -> int:
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
        command=_command_line(args),
        note="Provisional (machine shared during measurement)" if args.provisional else None,
    )
    print(run_benchmark(options))
    if options.output is not None:
        print(f"\nwritten to {options.output}")
    return 0


BENCHMARK_OPTIONS = (
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


def _command_line(args: argparse.Namespace) -> str:
    """The command line that reproduces this run, recorded in the table: only the options given."""
    words = ["qa-assistant", "benchmark"]
    for flag, options, _ in BENCHMARK_OPTIONS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value == options.get("default", False):  # only the store_true flags name no default
            continue
        words += [flag] if value is True else [flag, str(value)]
    return shlex.join(words)


def _positive(flag: str, value: int) -> int:
    if value < 1:
        raise UserError(f"{flag} must be at least 1; got {value}")
    return value
