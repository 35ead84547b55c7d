"""Test helpers: tiny generated Q/A data and tiny configs."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import numpy as np

from qa_assistant.config import Config, load_config

TOPICS = {
    "Our opening hours are 9 to 5, Monday to Friday.": ["hours", "opening times", "open"],
    "A basic plan costs 10 euros per month.": ["price", "cost", "fee"],
    "We are at 12 Harbour Street, Lisbon.": ["address", "location", "office"],
    "Write to help@example.com and we reply within a day.": ["email", "contact", "support"],
    "Refunds are paid within 14 days of a return.": ["refund", "money back", "return"],
    "Parcels ship within 2 working days.": ["shipping", "delivery", "dispatch"],
}
TEMPLATES = [
    "what is your {k}?",
    "tell me the {k}",
    "can you tell me about {k}",
    "i want to know the {k}",
    "{k} please",
    "what about the {k}",
    "how do i find your {k}",
    "question about {k}",
]


def faq_rows(seed: int = 0, per_answer: int = 8) -> list[dict[str, str]]:
    """A small FAQ: 6 answers, each asked in `per_answer` phrasings."""
    rng = random.Random(seed)
    rows = []
    for answer, keys in TOPICS.items():
        phrasings = {t.format(k=k) for t in TEMPLATES for k in keys}
        for question in rng.sample(sorted(phrasings), per_answer):
            rows.append({"question": question, "answer": answer})
    rng.shuffle(rows)
    return rows


def split_with_a_second_answer(run: Path, path: Path) -> Path:
    """A run's test split (JSONL) with its first question asked again with another answer.

    Evaluated per distinct question, that question has two references; the
    file has one more row than questions.
    """
    rows = [json.loads(line) for line in (run / "data" / "test.jsonl").read_text().splitlines() if line]
    other = next(a for a in sorted(TOPICS) if a != rows[0]["answer"])
    rows.append({**rows[0], "answer": other})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def run_with_top_k(run: Path, top_k: int, copy: Path) -> Path:
    """A copy of a finished run whose exports return `top_k` answers (`export.top_k`)."""
    import yaml

    shutil.copytree(run, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["export"]["top_k"] = top_k
    (copy / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return copy


TINY = [
    "text.max_length=8",
    "embedding.dim=8",
    "encoder.units=8",
    "train.epochs=2",
    "train.batch_size=8",
    "train.learning_rate=0.01",
    "train.early_stopping=0",
    "export.top_k=3",
]


def export_shell(version: Path, config_yaml: str) -> Path:
    """An export as far as the checks before loading read it: an (empty) SavedModel file and its
    run's `config.yaml`; loading it would fail."""
    (version / "assets.extra").mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    (version / "assets.extra" / "config.yaml").write_text(config_yaml)
    return version


def tiny_config(*overrides: str, train: str | Path | None = None, test: str | Path | None = None) -> Config:
    """A config that trains in seconds."""
    extra = list(overrides)
    if train is not None:
        extra.append(f"data.train={train}")
    if test is not None:
        extra.append(f"data.test={test}")
    return load_config([], [*TINY, *extra])


SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def faq_words() -> list[str]:
    """Every lower-cased word and punctuation mark of the generated FAQ."""
    import re

    words = set()
    for row in faq_rows(per_answer=24):
        for text in row.values():
            words.update(re.findall(r"\w+|[^\w\s]", text.lower()))
    return sorted(words)


def tiny_preset(directory: Path, *, layers: int = 2) -> Path:
    """A randomly initialised BERT backbone + tokenizer saved as a keras-hub preset."""
    import keras_hub

    vocabulary = SPECIAL_TOKENS + faq_words()
    keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary),
        num_layers=layers,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=32,
        name="bert_backbone",  # not the next free auto-name: tests look the layer up by name
    ).save_to_preset(str(directory))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(str(directory))
    return directory


def tiny_hf_bert_checkpoint(directory: Path, *, layers: int = 2, hidden: int = 8) -> Path:
    """A Hugging Face BERT checkpoint directory written by hand, laid out as all-MiniLM-L6-v2 is.

    `config.json`, `model.safetensors` (sentence-transformers' names: no `bert.`
    prefix, LayerNorm `weight`/`bias`), `vocab.txt` and `tokenizer_config.json`:
    loading it goes through keras-hub's Hugging Face converter, as MiniLM does,
    so a missing converter dependency (e.g. `safetensors`) fails here too.
    """
    import numpy as np
    from safetensors.numpy import save_file

    vocabulary = SPECIAL_TOKENS + faq_words()
    intermediate, positions = 2 * hidden, 32
    rng = np.random.default_rng(0)
    shapes = _bert_weight_shapes(len(vocabulary), hidden, intermediate, positions, layers)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {name: rng.normal(0, 0.2, shape).astype("float32") for name, shape in shapes.items()},
        str(directory / "model.safetensors"),
    )
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": len(vocabulary),
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "intermediate_size": intermediate,
        "max_position_embeddings": positions,
        "type_vocab_size": 2,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
    }
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}), encoding="utf-8")
    (directory / "vocab.txt").write_text("".join(f"{token}\n" for token in vocabulary), encoding="utf-8")
    return directory


def _bert_weight_shapes(
    vocabulary_size: int, hidden: int, intermediate: int, positions: int, layers: int
) -> dict[str, tuple[int, ...]]:
    """Hugging Face BERT weight names and shapes (torch `Linear` weights are `[out, in]`)."""
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (vocabulary_size, hidden),
        "embeddings.position_embeddings.weight": (positions, hidden),
        "embeddings.token_type_embeddings.weight": (2, hidden),
        "pooler.dense.weight": (hidden, hidden),
        "pooler.dense.bias": (hidden,),
    }
    for part in ("embeddings.", *(f"encoder.layer.{i}.attention.output." for i in range(layers))):
        shapes |= {f"{part}LayerNorm.weight": (hidden,), f"{part}LayerNorm.bias": (hidden,)}
    for i in range(layers):
        layer = f"encoder.layer.{i}."
        for name in (
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
        ):
            shapes |= {f"{layer}{name}.weight": (hidden, hidden), f"{layer}{name}.bias": (hidden,)}
        shapes |= {
            f"{layer}intermediate.dense.weight": (intermediate, hidden),
            f"{layer}intermediate.dense.bias": (intermediate,),
            f"{layer}output.dense.weight": (hidden, intermediate),
            f"{layer}output.dense.bias": (hidden,),
            f"{layer}output.LayerNorm.weight": (hidden,),
            f"{layer}output.LayerNorm.bias": (hidden,),
        }
    return shapes


def saved_variable_paths(model_file: Path) -> list[str]:
    """Every group and dataset path in a `.keras` file's weights (`layers/...`, `optimizer/...`)."""
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(model_file) as archive:
        weights = io.BytesIO(archive.read("model.weights.h5"))
    paths: list[str] = []
    with h5py.File(weights, "r") as store:
        store.visit(paths.append)
    return paths


MPNET_SIZES = {"hidden": 8, "heads": 2, "inner": 16, "layers": 2, "positions": 40}


def tiny_hf_mpnet_checkpoint(directory: Path, words: list[str], seed: int = 0) -> dict[str, np.ndarray]:
    """A randomly initialised MPNet in Hugging Face's layout, vocabulary `<s> <pad> </s> <unk> [PAD] [UNK]` + words.

    Returns the weights it wrote (by Hugging Face name), for reference computations.
    """
    from safetensors.numpy import save_file

    hidden, heads, inner, layers = (MPNET_SIZES[k] for k in ("hidden", "heads", "inner", "layers"))
    vocabulary = ["<s>", "<pad>", "</s>", "<unk>", "[PAD]", "[UNK]", *words, "<mask>"]
    rng = np.random.default_rng(seed)
    weights = {
        "embeddings.word_embeddings.weight": rng.normal(size=(len(vocabulary), hidden)),
        "embeddings.position_embeddings.weight": rng.normal(size=(MPNET_SIZES["positions"], hidden)),
        "embeddings.LayerNorm.weight": 1 + 0.1 * rng.normal(size=hidden),
        "embeddings.LayerNorm.bias": 0.1 * rng.normal(size=hidden),
        "encoder.relative_attention_bias.weight": rng.normal(size=(32, heads)),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}"
        for name in "qkvo":
            weights[f"{p}.attention.attn.{name}.weight"] = rng.normal(size=(hidden, hidden)) / math.sqrt(
                hidden
            )
            weights[f"{p}.attention.attn.{name}.bias"] = 0.1 * rng.normal(size=hidden)
        weights[f"{p}.intermediate.dense.weight"] = rng.normal(size=(inner, hidden)) / math.sqrt(hidden)
        weights[f"{p}.intermediate.dense.bias"] = 0.1 * rng.normal(size=inner)
        weights[f"{p}.output.dense.weight"] = rng.normal(size=(hidden, inner)) / math.sqrt(inner)
        weights[f"{p}.output.dense.bias"] = 0.1 * rng.normal(size=hidden)
        for norm in ("attention.LayerNorm", "output.LayerNorm"):
            weights[f"{p}.{norm}.weight"] = 1 + 0.1 * rng.normal(size=hidden)
            weights[f"{p}.{norm}.bias"] = 0.1 * rng.normal(size=hidden)
    weights = {k: v.astype("float32") for k, v in weights.items()}
    directory.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(directory / "model.safetensors"))
    config = {
        "model_type": "mpnet",
        "vocab_size": len(vocabulary),
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": inner,
        "max_position_embeddings": MPNET_SIZES["positions"],
        "relative_attention_num_buckets": 32,
        "layer_norm_eps": 1e-5,
        "pad_token_id": 1,
    }
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": True, "strip_accents": None})
    )
    return weights
