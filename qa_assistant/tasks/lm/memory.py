"""Will fine-tuning fit in memory? An estimate from the model's `config.json`, checked before training.

A laptop that runs out of memory part-way through an epoch kills the run
(or the machine) after minutes of work; the estimate refuses it up front,
with the keys that lower it. Figures are float32 bytes:

* the weights, `parameters * 4`;
* with every weight trained (`lm.lora_rank: 0`), their gradients and
  Adam's two moments, three times as much again (LoRA's are negligible);
* the activations that the backward pass keeps, for the longest batch
  (`train.batch_size * lm.max_length` tokens): per layer about
  `10 * hidden + 4 * intermediate` values per token, the attention
  probabilities (`heads * length` per token, twice) and the logits over
  the vocabulary (three copies: logits, probabilities, their gradient);
* a fixed allowance for the runtime (TensorFlow, the tokenizer, the data,
  a grounding retriever), set from measurements: SmolLM2 LoRA runs peaked
  1.7-1.9 GiB above the rest of the estimate (resident memory in training,
  2 CPU cores: 6.2 GiB for 160-token batches of 8, 9.8 GiB for grounded
  327-token batches with a MiniLM retriever loaded).

`experiments/personalize_llm.py` reports the measured peak of its runs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from qa_assistant.errors import UserError

log = logging.getLogger(__name__)

FLOAT_BYTES = 4
RUNTIME_BYTES = 2 << 30  # TensorFlow, keras-hub, the tokenizer, the data (see the module docstring)
GIB = float(1 << 30)


def parameter_count(config: dict[str, Any]) -> int:
    """Parameters of a Llama-family model from its Hugging Face `config.json` fields."""
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    head_dim = config.get("head_dim", hidden // heads)
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    mlp = 3 * hidden * config["intermediate_size"]
    embeddings = config["vocab_size"] * hidden * (1 if config.get("tie_word_embeddings", False) else 2)
    return embeddings + layers * (attention + mlp + 2 * hidden) + hidden


def training_bytes(config: dict[str, Any], *, full: bool, batch_size: int, length: int) -> int:
    """Estimated peak bytes of a training step (see the module docstring)."""
    weights = parameter_count(config) * FLOAT_BYTES
    optimizer = 3 * weights if full else 0
    tokens = batch_size * length
    per_layer = 10 * config["hidden_size"] + 4 * config["intermediate_size"]
    per_layer += 2 * config["num_attention_heads"] * length
    activations = tokens * config["num_hidden_layers"] * per_layer * FLOAT_BYTES
    logits = 3 * tokens * config["vocab_size"] * FLOAT_BYTES
    return weights + optimizer + activations + logits + RUNTIME_BYTES


def available_bytes() -> int | None:
    """Memory the system can give a new process now (`MemAvailable`), or `None` where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(model_dir: str, *, full: bool, batch_size: int, length: int, length_keys: str = "") -> None:
    """Raises `UserError` when training the model in `model_dir` needs more memory than is available.

    `length_keys` names the config keys that make up `length` (for the
    message); by default `lm.max_length`.

    Does nothing for a model without a local `config.json` (an `hf://`
    handle before download) or where the available memory is unknown.
    """
    config_file = Path(model_dir) / "config.json"
    if not config_file.is_file():
        return
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        needed = training_bytes(config, full=full, batch_size=batch_size, length=length)
    except (KeyError, TypeError, ValueError):
        return  # not a Llama-style config: keras-hub reports what it cannot load
    available = available_bytes()
    log.info(
        "estimated training memory %.1f GiB (%s, batch %d x %d tokens); %s available",
        needed / GIB,
        "every weight" if full else "LoRA",
        batch_size,
        length,
        f"{available / GIB:.1f} GiB" if available is not None else "unknown",
    )
    if available is not None and needed > available:
        raise UserError(
            f"training this model needs about {needed / GIB:.1f} GiB of memory but {available / GIB:.1f} GiB "
            f"is available; expected a smaller train.batch_size ({batch_size}) or example length "
            f"({length} tokens: {length_keys or 'lm.max_length'})"
            + ("" if not full else ", or LoRA (lm.lora_rank > 0)")
        )
