"""The speed-and-scale benchmark, start to finish: each part in its own measured process.

1. training throughput of the article GRU config, the project's pipeline and
   XLA against the naive way (`training_speed.py`, one process);
2. serving latency and batch throughput of an export of every task in the
   catalogue (`serving_speed.py`, one process per export, TensorFlow only);
3. wall time of the README's main command, step by step, when asked for (`readme_command.py`);
4. peak memory (resident set) of each of those processes.

The parent process only orchestrates (it never starts TensorFlow), so each
part's peak memory is its own.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qa_assistant.benchmark.machine import describe_machine, run_measured
from qa_assistant.benchmark.readme_command import readme_steps
from qa_assistant.benchmark.report import Report, write_section
from qa_assistant.errors import UserError
from qa_assistant.layout import split_file
from qa_assistant.tasks import task_names

log = logging.getLogger(__name__)

PARTS = ("training", "serving", "readme")
# The README command trains the article config to early stopping (minutes): asked for, not default.
DEFAULT_PARTS = ("training", "serving")
# The export benchmarked for each task: the one the issue sets a target for,
# else the first config of that task in experiments/configs.
PREFERRED_CONFIGS = {
    "classify": "article_gru.yaml",
    "retrieve": "retrieval_pretrained.yaml",
    "generate": "generate_gru_attention.yaml",
}


@dataclass
class BenchmarkOptions:
    """What to measure and how often.

    Attributes:
        config: the training-throughput config (the article's GRU).
        configs_dir: where the serving configs are looked up.
        repeats: timed training epochs per variant (the README command runs once).
        requests: timed single-question calls per export.
        batches: timed calls of 64 questions per export.
        serving_epochs: epochs each served model is trained for (speed does not depend on it).
        parts: which of `PARTS` to run.
        readme: the README whose main command is timed.
        workdir: where runs and exports go (a temporary directory if `None`).
        output: the BENCHMARKS.md to write the section into (`None`: print only).
        command: the command line recorded in the section.
        note: a line put first in the section (say, that the machine was shared).
        env: extra environment variables for the measured processes.
    """

    config: Path = Path("experiments/configs/article_gru.yaml")
    configs_dir: Path = Path("experiments/configs")
    repeats: int = 5
    requests: int = 300
    batches: int = 30
    serving_epochs: int = 1
    parts: tuple[str, ...] = DEFAULT_PARTS
    readme: Path = Path("README.md")
    workdir: Path | None = None
    output: Path | None = Path("BENCHMARKS.md")
    command: str = "qa-assistant benchmark"
    note: str | None = None
    env: dict[str, str] = field(default_factory=dict)


def serving_configs(configs_dir: Path, tasks: list[str]) -> dict[str, Path | None]:
    """One config per task of the catalogue (`PREFERRED_CONFIGS`, else the first of its type)."""
    chosen: dict[str, Path | None] = {}
    for task in tasks:
        preferred = configs_dir / PREFERRED_CONFIGS.get(task, "")
        candidates = [preferred] if preferred.is_file() else []
        candidates += [p for p in sorted(configs_dir.glob("*.yaml")) if _task_of(p) == task]
        chosen[task] = candidates[0] if candidates else None
    return chosen


def _task_of(path: Path) -> str:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return str((data.get("task") or {}).get("type", "classify"))


def run_benchmark(options: BenchmarkOptions) -> str:
    """Runs the chosen parts and returns the Markdown section (also written to `options.output`).

    Raises:
        UserError: a missing config or README, an unknown part, or a failed step.

    Example:

    >>> print(run_benchmark(BenchmarkOptions(parts=("training",), output=None)))  # doctest: +SKIP
    """
    unknown = sorted(set(options.parts) - set(PARTS))
    if unknown:
        raise UserError(
            f"unknown benchmark part(s) {', '.join(unknown)}; expected some of: {', '.join(PARTS)}"
        )
    if not options.config.is_file():
        raise UserError(f"config '{options.config}' not found; run the benchmark from the repository root")
    steps = readme_steps(options.readme) if "readme" in options.parts else []
    started = time.perf_counter()
    report = Report(
        machine=describe_machine(), command=options.command, options=_described(options), note=options.note
    )
    with tempfile.TemporaryDirectory(prefix="qa-assistant-benchmark-") as scratch:
        workdir = options.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": _package_root(), **options.env}
        if "training" in options.parts:
            report.training = _training(options, workdir, env)
        if "serving" in options.parts:
            report.serving = _serving(options, workdir, env)
        if steps:
            report.readme = _readme(steps, options.readme, workdir, env)
    report.seconds = time.perf_counter() - started
    markdown = report.markdown()
    if options.output is not None:
        write_section(options.output, markdown)
    return markdown


def _package_root() -> str:
    # Children must run this very code (a checkout on PYTHONPATH may differ from the installed one).
    root = str(Path(__file__).resolve().parents[2])
    extra = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{extra}" if extra else root


def _described(options: BenchmarkOptions) -> dict[str, Any]:
    return {
        "config": str(options.config),
        "timed epochs per variant": options.repeats,
        "single-question requests per export": options.requests,
        "batches of 64 per export": options.batches,
        "epochs the served models were trained": options.serving_epochs,
        "README command runs": 1 if "readme" in options.parts else 0,
    }


def _training(options: BenchmarkOptions, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    out = workdir / "training.json"
    args = ["-m", "qa_assistant.benchmark.training_speed", str(options.config), str(out)]
    measured = run_measured([*args, "--repeats", str(options.repeats)], env=env)
    result = json.loads(out.read_text(encoding="utf-8"))
    result["peak_mib"] = measured.peak_mib
    result["seconds"] = measured.seconds
    return result


def _serving(options: BenchmarkOptions, workdir: Path, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for task, config in serving_configs(options.configs_dir, task_names()).items():
        if config is None:
            results[task] = {"missing": f"no config of task '{task}' in {options.configs_dir}"}
            continue
        run, saved_models = workdir / f"run-{task}", workdir / "saved_models"
        train = ["-m", "qa_assistant", "train", "--config", str(config), "--output", str(run), "--restart"]
        train += ["--name", task, "--saved-models", str(saved_models)]
        # XLA off: the export is the same graph either way, and compiling each bucket shape only costs time.
        train += ["--set", f"train.epochs={options.serving_epochs}", "train.early_stopping=0"]
        train += ["train.jit_compile=false"]
        prepared = run_measured(train, env=env)
        export = max(
            (p for p in (saved_models / task).iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
        )
        questions = workdir / f"questions-{task}.json"
        questions.write_text(json.dumps(_questions(run)), encoding="utf-8")
        out = workdir / f"serving-{task}.json"
        args = ["-m", "qa_assistant.benchmark.serving_speed", str(export), str(questions), str(out)]
        measured = run_measured(
            [*args, "--requests", str(options.requests), "--batches", str(options.batches)], env=env
        )
        results[task] = {
            **json.loads(out.read_text(encoding="utf-8")),
            "config": config.name,
            "peak_mib": measured.peak_mib,
            "train_and_export_seconds": prepared.seconds,
        }
    return results


def _questions(run: Path) -> list[str]:
    for split in ("test", "validation", "train"):
        path = split_file(run, split)
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        questions = [json.loads(line)["question"] for line in lines if line.strip()]
        if questions:
            return questions
    return ["What is AI?"]


def _readme(steps: list[list[str]], readme: Path, workdir: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    # One run: it trains to early stopping, and its minutes dwarf the run-to-run spread.
    here = workdir / "readme"
    here.mkdir()
    (here / "experiments").symlink_to(readme.resolve().parent / "experiments")
    return [
        {"step": "qa-assistant " + " ".join(step), "seconds": done.seconds, "peak_mib": done.peak_mib}
        for step, done in zip(
            steps,
            [run_measured(["-m", "qa_assistant", *step], cwd=here, env=env) for step in steps],
            strict=True,
        )
    ]
