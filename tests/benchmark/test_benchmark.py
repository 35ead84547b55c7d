"""The benchmark harness measures what it says and writes its table; no timing is asserted."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from qa_assistant.benchmark import BenchmarkOptions, run_benchmark, serving_configs
from qa_assistant.benchmark.readme_command import readme_steps
from qa_assistant.benchmark.report import END, SECTION, START, Report, write_section
from qa_assistant.benchmark.serving_speed import measure_serving
from qa_assistant.benchmark.training_speed import VARIANTS, measure_training
from qa_assistant.cli import main
from qa_assistant.errors import UserError
from qa_assistant.tasks import task_names
from tests.helpers import TINY, faq_rows, tiny_config

ROOT = Path(__file__).resolve().parents[2]


def test_readme_main_command_is_what_gets_timed() -> None:
    steps = readme_steps(ROOT / "README.md")
    assert [s[0] for s in steps] == ["train", "export", "evaluate", "ask"]
    assert steps[0][:3] == ["train", "--config", "experiments/configs/article_gru.yaml"]


def test_readme_without_a_quick_start_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# x\n\n## Usage\n\nnothing\n")
    with pytest.raises(UserError, match="no ```bash block under '## Quick start'"):
        readme_steps(tmp_path / "README.md")


def test_every_task_in_the_catalogue_has_a_served_config() -> None:
    chosen = serving_configs(ROOT / "experiments" / "configs", task_names())
    assert set(chosen) == set(task_names())
    assert all(path is not None and path.is_file() for path in chosen.values()), chosen
    assert chosen["classify"].name == "article_gru.yaml"


def test_serving_configs_prefer_the_named_one_then_the_first_of_the_task(tmp_path: Path) -> None:
    for name, task in (
        ("a_first.yaml", "classify"),
        ("article_gru.yaml", "classify"),
        ("z.yaml", "retrieve"),
    ):
        (tmp_path / name).write_text(yaml.safe_dump({"task": {"type": task}}))
    chosen = serving_configs(tmp_path, ["classify", "retrieve", "generate"])
    assert chosen == {
        "classify": tmp_path / "article_gru.yaml",
        "retrieve": tmp_path / "z.yaml",
        "generate": None,
    }


def benchmarks_file(tmp_path: Path) -> Path:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(
        f"# Benchmarks\n\n## Other\n\nkeep me\n\n{SECTION}\n\nHand-written intro.\n\n## Reliability (issue 8)\n\nkeep too\n"
    )
    return path


def test_section_is_written_between_markers_and_replaced_next_time(tmp_path: Path) -> None:
    path = benchmarks_file(tmp_path)
    write_section(path, f"{START}\nfirst\n{END}")
    write_section(path, f"{START}\nsecond\n{END}")
    text = path.read_text()
    assert "first" not in text
    assert text.count(START) == 1
    assert "keep me" in text
    assert "keep too" in text
    assert text.index("Hand-written intro.") < text.index("second") < text.index("## Reliability")


def test_report_states_targets_met_or_not() -> None:
    training = {
        "examples": 100,
        "padded_width": 30,
        "mean_length": 6.5,
        "epochs": {"naive": [100.0, 110.0, 90.0], "project": [140.0, 150.0, 130.0]},
        "xla": {"naive": False, "project": True},
        "peak_mib": 900.0,
    }
    serving = {
        "classify": {
            "config": "article_gru.yaml",
            "single_p50_ms": 3.0,
            "single_p99_ms": 9.0,
            "batch_questions_per_second": 4000.0,
            "batch_p50_ms": 16.0,
            "peak_mib": 500.0,
        },
        "generate": {"missing": "no config of task 'generate'"},
    }
    report = Report(
        {"date": "2026-01-01", "cpu": "x"}, "qa-assistant benchmark", {"config": "c.yaml"}, training, serving
    )
    text = report.markdown()
    assert "| project | **project**: the tf.data pipeline | on | 140 | 1.40x |" in text
    assert "| training throughput at least 1.5x the naive way (target 2x) | 1.40x | **no** |" in text
    assert "| GRU classifier (article_gru.yaml) single-question p50 under 5 ms | 3.00 ms | yes |" in text
    assert "| generate | no config of task 'generate' |" in text


@pytest.mark.filterwarnings("ignore:Your input ran out of data")
def test_training_speed_times_the_variants_on_the_same_data(faq_csv: Path) -> None:
    speed = measure_training(tiny_config(train=faq_csv), repeats=2, variants=("project", "bucketing"))
    assert list(speed.epochs) == ["naive", "project", "bucketing"]  # naive always, first
    assert all(len(v) == 2 and min(v) > 0 for v in speed.epochs.values())
    assert speed.xla == {"naive": False, "bucketing": False, "project": True}
    assert set(VARIANTS) == {"naive", "bucketing", "xla", "project"}
    assert 1 <= speed.mean_length <= speed.padded_width <= 8  # padded to the longest question
    assert speed.examples == 32


def test_serving_speed_calls_the_reloaded_export(tiny_export: Path) -> None:
    speed = measure_serving(
        tiny_export, ["what is your price?", "hours please"], requests=5, batches=2, warmup=2
    )
    assert 0 < speed.single_p50_ms <= speed.single_p99_ms
    assert speed.batch_size == 64
    assert speed.batch_questions_per_second > 0


@pytest.fixture
def cli_logging() -> Iterator[None]:
    """`cli.main` takes over the package logger (its own handler, no propagation); give it back."""
    logger = logging.getLogger("qa_assistant")
    saved = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


@pytest.mark.usefixtures("cli_logging")
def test_benchmark_command_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark", "--parts", "training,speed", "--output", "-"]) == 2
    assert (
        "unknown benchmark part(s) speed; expected some of: training, serving, readme"
        in capsys.readouterr().err
    )
    assert main(["benchmark", "--repeats", "0"]) == 2
    assert "--repeats must be at least 1; got 0" in capsys.readouterr().err


@pytest.mark.large
def test_the_whole_harness_at_tiny_settings(tmp_path: Path) -> None:
    """Every part in its child process, and the section written; sizes tiny, so the numbers mean nothing."""
    repository = tmp_path / "repo"
    configs = repository / "experiments" / "configs"
    configs.mkdir(parents=True)
    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(data, index=False)
    settings: dict = {"data": {"train": str(data)}}
    for item in TINY:
        key, value = item.split("=")
        section, name = key.split(".")
        settings.setdefault(section, {})[name] = yaml.safe_load(value)
    (configs / "article_gru.yaml").write_text(yaml.safe_dump(settings))
    (repository / "README.md").write_text(
        "# x\n\n## Quick start\n\n```bash\npip install -e . && "
        "qa-assistant train --config experiments/configs/article_gru.yaml --output runs/t\n```\n\n## More\n"
    )
    output = benchmarks_file(tmp_path)
    markdown = run_benchmark(
        BenchmarkOptions(
            config=configs / "article_gru.yaml",
            configs_dir=configs,
            repeats=1,
            requests=3,
            batches=1,
            readme=repository / "README.md",
            workdir=tmp_path / "work",
            output=output,
        )
    )
    assert markdown in output.read_text()
    assert "**Training throughput**" in markdown
    assert "| classify | article_gru.yaml |" in markdown
    assert (
        "| `qa-assistant train --config experiments/configs/article_gru.yaml --output runs/t` |" in markdown
    )
    served = json.loads((tmp_path / "work" / "serving-classify.json").read_text())
    assert served["single_requests"] == 3
    assert not (repository / "runs").exists()  # the README command ran in the work directory
