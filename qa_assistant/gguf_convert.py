"""GGUF language models (llama.cpp's file format) as Hugging Face directories that keras-hub loads offline.

keras-hub reads a Hugging Face checkpoint directory (`config.json`,
`model.safetensors`, `tokenizer.json`, `tokenizer_config.json`) but not
GGUF. `convert_gguf` writes such a directory from a GGUF file of the `llama`
architecture with a byte-level BPE (`gpt2`) tokenizer, which keras-hub then
loads as `Llama3Backbone` / `Llama3CausalLM` / `Llama3Tokenizer`:

- quantised tensors (Q4_1, Q8_0, K-quants, ...) are dequantised with the
  `gguf` package and stored as float32, as are F16 and BF16 ones;
- llama.cpp permutes the rows of `attn_q` / `attn_k` for its rotary layout
  (`permute` in its `convert_hf_to_gguf.py`); they are permuted back, per
  head (key heads counted with the key/value head count);
- the GGUF vocabulary, merges and control tokens become `tokenizer.json`,
  and the BOS / EOS tokens and chat template `tokenizer_config.json`;
- `conversion.json` records the source files (name, size, SHA-256 of the
  whole file), every tensor's GGUF type and the `gguf` package's version.

The directory is written under a temporary name beside `out_dir` and renamed
into place when complete, so an interrupted conversion never leaves a
directory that looks valid. `cached_conversion` converts a file once into the
user's cache and reuses the result.

A model split by `gguf-split` (`NAME-00001-of-00003.gguf`, ...) is read whole:
give any one part's path, or all of them.

Example:

>>> model_dir = cached_conversion("SmolLM2-135M-Instruct.Q4_1.gguf")  # doctest: +SKIP
>>> keras_hub.models.Llama3CausalLM.from_preset(str(model_dir))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import math
import os
import re
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qa_assistant import atomic
from qa_assistant.errors import UserError

log = logging.getLogger(__name__)

SUPPORTED_ARCHITECTURES = ("llama",)
SUPPORTED_TOKENIZERS = ("gpt2",)
CONVERSION_FILE = "conversion.json"
# Part of the cache key: bump it when the written directory changes, so older conversions are redone.
FORMAT_VERSION = 1
OUTPUT_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    CONVERSION_FILE,
)
CACHE_ENV = "QA_ASSISTANT_CACHE"

# How gguf-split names the parts of a split model.
SPLIT_NAME = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
_TOKEN_CONTROL, _TOKEN_USER_DEFINED = 3, 4  # llama.cpp's token types (1 is a normal token)
# llama.cpp's tensor names, per block, and their Hugging Face names.
_BLOCK_TENSORS = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_TOP_TENSORS = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
# Hugging Face pre-tokenizers for llama.cpp's `tokenizer.ggml.pre` names (others: GPT-2's).
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
_PRE_TOKENIZERS: dict[str, dict[str, Any]] = {
    "smollm": {
        "type": "Sequence",
        "pretokenizers": [{"type": "Digits", "individual_digits": True}, _BYTE_LEVEL],
    },
    "llama-bpe": {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": _LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False},
            {**_BYTE_LEVEL, "use_regex": False},
        ],
    },
}


def convert_gguf(path_or_paths: str | Path | Sequence[str | Path], out_dir: str | Path) -> Path:
    """Writes a Hugging Face checkpoint directory that keras-hub loads, from a GGUF language model.

    An existing `out_dir` is replaced once the new directory is complete.

    Args:
        path_or_paths: the GGUF file; for a split model any one part, or all parts.
        out_dir: the directory to write.

    Returns:
        `out_dir`.

    Raises:
        UserError: the file is missing or damaged, or holds a model this converter does not support.
    """
    return _convert(gguf_parts(path_or_paths), Path(out_dir), replace=True)


def cached_conversion(gguf_path: str | Path | Sequence[str | Path]) -> Path:
    """The converted directory of a GGUF model, converting it the first time only.

    The conversion lives under `cache_root() / "lm"`, in a directory named
    after the file and a key made of each part's absolute path, size and
    modification time (and `FORMAT_VERSION`), so a changed file is converted
    again. A complete earlier conversion is reused; leftovers of a killed
    one are removed.

    Args:
        gguf_path: the GGUF file; for a split model any one part, or all parts.

    Returns:
        The directory, ready for `from_preset`.

    Raises:
        UserError: as `convert_gguf`.
    """
    parts = gguf_parts(gguf_path)
    key = hashlib.sha256(str(FORMAT_VERSION).encode())
    for part in parts:
        stat = part.stat()
        key.update(f"\0{part}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    match = SPLIT_NAME.match(parts[0].name)
    stem = match["stem"] if match else parts[0].stem
    target = cache_root() / "lm" / f"{stem}-{key.hexdigest()[:12]}"
    if is_complete(target):
        log.debug("reusing the conversion of %s in %s", parts[0].name, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic.remove_stale(target.parent)
    log.info(
        "converting %s to a keras-hub checkpoint in %s (once; later loads reuse it)", parts[0].name, target
    )
    start = time.perf_counter()
    _convert(parts, target, replace=False)
    log.info("converted %s in %.1f s", parts[0].name, time.perf_counter() - start)
    return target


def cache_root() -> Path:
    """`$QA_ASSISTANT_CACHE`, else `$XDG_CACHE_HOME/qa_assistant`, else `~/.cache/qa_assistant`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "qa_assistant"


def is_complete(directory: str | Path) -> bool:
    """Whether `directory` holds a finished conversion written by this `FORMAT_VERSION`."""
    directory = Path(directory)
    if not all((directory / name).is_file() for name in OUTPUT_FILES):
        return False
    try:
        record = json.loads((directory / CONVERSION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("format_version") == FORMAT_VERSION


def gguf_parts(path_or_paths: str | Path | Sequence[str | Path], search: Sequence[Path] = ()) -> list[Path]:
    """The absolute paths of a GGUF model's files, in order.

    One part of a split model (`NAME-00002-of-00003.gguf`) stands for all of
    them, found beside it or else in one of the `search` directories.

    Raises:
        UserError: a file, or a part of a split model, is missing.
    """
    given = [path_or_paths] if isinstance(path_or_paths, (str, Path)) else list(path_or_paths)
    if not given:
        raise UserError("no GGUF file given")
    paths = [Path(path).expanduser().resolve() for path in given]
    match = SPLIT_NAME.match(paths[0].name)
    if len(paths) == 1 and match:
        count = int(match["count"])
        names = [f"{match['stem']}-{no:05d}-of-{count:05d}.gguf" for no in range(1, count + 1)]
        places = [paths[0].parent, *search]
        paths = [next((d / n for d in places if (d / n).is_file()), paths[0].parent / n) for n in names]
        missing = [path.name for path in paths if not path.is_file()]
        if missing:
            raise UserError(
                f"GGUF model {match['stem']} is split into {count} parts; missing {', '.join(missing)}"
            )
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise UserError(f"GGUF file not found: {', '.join(missing)}")
    return sorted(set(paths), key=lambda path: path.name)


def _convert(parts: list[Path], out_dir: Path, replace: bool) -> Path:
    start = time.perf_counter()
    fields, tensors = _read(parts)
    _check_supported(fields, parts[0])
    config = _model_config(fields, tensors)
    tokenizer, tokenizer_config = _tokenizer_files(fields, config)
    weights = _hf_weights(tensors, config)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(atomic.temporary_name(out_dir.name))
    try:
        tmp.mkdir()
        _write_json(tmp / "config.json", config)
        _save_safetensors(weights, tmp / "model.safetensors")
        del weights
        _write_json(tmp / "tokenizer.json", tokenizer)
        _write_json(tmp / "tokenizer_config.json", tokenizer_config)
        record = _conversion_record(parts, fields, tensors, time.perf_counter() - start)
        _write_json(tmp / CONVERSION_FILE, record)  # last: its presence marks a complete directory
        _install(tmp, out_dir, replace)
    finally:
        atomic.remove(tmp)
    return out_dir


def _read(parts: list[Path]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The metadata fields (of the first part) and the tensors (of all parts) by name."""
    import gguf  # deferred: ~0.2 s to import, not needed when a conversion is cached

    readers = []
    for part in parts:
        try:
            readers.append(gguf.GGUFReader(part))
        except (ValueError, OSError, IndexError) as error:
            raise UserError(f"cannot read GGUF file {part}: {error}") from None
    fields = readers[0].fields
    count = int(fields["split.count"].contents()) if "split.count" in fields else 1
    if count != len(parts):
        names = ", ".join(part.name for part in parts)
        raise UserError(f"GGUF model {parts[0].name} has {count} parts, but {len(parts)} were given: {names}")
    tensors: dict[str, Any] = {}
    for reader in readers:
        for tensor in reader.tensors:
            if tensor.name in tensors:
                raise UserError(
                    f"GGUF tensor {tensor.name} appears twice in {', '.join(p.name for p in parts)}"
                )
            tensors[tensor.name] = tensor
    return fields, tensors


def _value(fields: dict[str, Any], key: str, default: Any = None) -> Any:
    return fields[key].contents() if key in fields else default


def _required(fields: dict[str, Any], key: str) -> int:
    if key not in fields:
        raise UserError(f"GGUF model lacks the metadata key {key}")
    return int(fields[key].contents())


def _float32(value: float) -> float:
    """A float32 metadata value as the decimal it was written from (9.99999974e-06 is 1e-05)."""
    return float(str(np.float32(value)))


def _check_supported(fields: dict[str, Any], path: Path) -> None:
    architecture = _value(fields, "general.architecture")
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise UserError(
            f"GGUF file {path.name} holds a '{architecture}' model; "
            f"only {', '.join(SUPPORTED_ARCHITECTURES)} GGUF models can be converted"
        )
    tokenizer = _value(fields, "tokenizer.ggml.model")
    if tokenizer not in SUPPORTED_TOKENIZERS:
        raise UserError(
            f"GGUF file {path.name} has a '{tokenizer}' tokenizer; only byte-level BPE "
            f"({', '.join(SUPPORTED_TOKENIZERS)}) tokenizers can be converted"
        )


def _model_config(fields: dict[str, Any], tensors: dict[str, Any]) -> dict[str, Any]:
    """config.json of a Hugging Face `LlamaForCausalLM` with the GGUF's hyperparameters."""
    if "token_embd.weight" not in tensors:
        raise UserError("GGUF model has no token_embd.weight tensor")
    hidden = _required(fields, "llama.embedding_length")
    heads = _required(fields, "llama.attention.head_count")
    kv_heads = int(_value(fields, "llama.attention.head_count_kv", heads))
    head_dim = hidden // heads
    for key in ("llama.attention.key_length", "llama.rope.dimension_count"):
        if hidden % heads or int(_value(fields, key, head_dim)) != head_dim:
            raise UserError(
                f"GGUF model has {key}={_value(fields, key)} with {hidden} hidden units and {heads} heads; "
                "keras-hub's Llama3 needs hidden units / heads there (no separate head size, full rotary)"
            )
    theta = _float32(_value(fields, "llama.rope.freq_base", 10000.0))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": int(tensors["token_embd.weight"].shape[-1]),
        "hidden_size": hidden,
        "intermediate_size": _required(fields, "llama.feed_forward_length"),
        "num_hidden_layers": _required(fields, "llama.block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "attention_bias": False,
        "rope_theta": theta,
        "rope_scaling": _rope_scaling(fields, tensors, head_dim, theta),
        # Read by Hugging Face transformers; keras-hub's Llama3 converter ignores it and keeps
        # Llama3Backbone's layer_norm_epsilon default, 1e-6 (pass layer_norm_epsilon to
        # Llama3Backbone.from_preset to use this value).
        "rms_norm_eps": _float32(_value(fields, "llama.attention.layer_norm_rms_epsilon", 1e-6)),
        "max_position_embeddings": int(_value(fields, "llama.context_length", 2048)),
        "tie_word_embeddings": "output.weight" not in tensors,
        "torch_dtype": "float32",
    }
    for gguf_name, hf_name in (("bos", "bos"), ("eos", "eos"), ("padding", "pad"), ("unknown", "unk")):
        token_id = _value(fields, f"tokenizer.ggml.{gguf_name}_token_id")
        if token_id is not None:
            config[f"{hf_name}_token_id"] = int(token_id)
    return config


def _rope_scaling(
    fields: dict[str, Any], tensors: dict[str, Any], head_dim: int, theta: float
) -> dict[str, Any] | None:
    """Hugging Face `rope_scaling` of the model: None, or Llama 3.1's, recovered from `rope_freqs.weight`.

    llama.cpp stores Llama 3.1-style scaling as per-frequency factors; they are
    checked against the factors that the usual parameters (low 1, high 4,
    original context 8192) give with the largest factor found.
    """
    kind = _value(fields, "llama.rope.scaling.type", "none")
    if kind not in ("none", ""):
        raise UserError(
            f"GGUF model uses '{kind}' RoPE scaling; keras-hub's Llama3 supports only Llama 3.1's"
        )
    if "rope_freqs.weight" not in tensors:
        return None
    found = _dequantize(tensors["rope_freqs.weight"]).reshape(-1)
    scaling = {
        "rope_type": "llama3",
        "factor": float(found.max()),
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    if found.shape != (head_dim // 2,) or not np.allclose(
        found, llama3_rope_factors(scaling, head_dim, theta)
    ):
        raise UserError(
            "GGUF model's rope_freqs.weight is not Llama 3.1 RoPE scaling with the usual parameters"
        )
    return scaling


def llama3_rope_factors(scaling: dict[str, Any], head_dim: int, theta: float) -> np.ndarray:
    """The per-frequency factors that llama.cpp stores as `rope_freqs.weight` for Llama 3.1 RoPE scaling."""
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    original = scaling["original_max_position_embeddings"]
    factors = []
    for freq in 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim):
        wavelength = 2 * math.pi / freq
        if wavelength < original / high:
            factors.append(1.0)
        elif wavelength > original / low:
            factors.append(factor)
        else:
            smooth = (original / wavelength - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(factors, dtype=np.float32)


def _hf_weights(tensors: dict[str, Any], config: dict[str, Any]) -> dict[str, np.ndarray]:
    """The model's tensors under Hugging Face names and shapes, float32, q/k rows in Hugging Face order."""
    expected = _expected_shapes(config)
    weights = {}
    for name, tensor in tensors.items():
        if name == "rope_freqs.weight":
            continue  # became config.json's rope_scaling
        hf_name = _hf_name(name)
        if hf_name not in expected:
            raise UserError(f"GGUF tensor {name} has no place in a Llama model; this model is not supported")
        array = _dequantize(tensor)
        if array.shape != expected[hf_name]:
            raise UserError(f"GGUF tensor {name} has shape {array.shape}; expected {expected[hf_name]}")
        if name.endswith(".attn_q.weight"):
            array = unpermute_rotary(array, config["num_attention_heads"])
        elif name.endswith(".attn_k.weight"):
            array = unpermute_rotary(array, config["num_key_value_heads"])
        weights[hf_name] = array
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise UserError(f"GGUF model lacks {len(missing)} tensors of a Llama model, e.g. {missing[0]}")
    return weights


def _hf_name(name: str) -> str:
    parts = name.split(".")
    if len(parts) == 4 and parts[0] == "blk" and parts[2] in _BLOCK_TENSORS:
        return f"model.layers.{parts[1]}.{_BLOCK_TENSORS[parts[2]]}.{parts[3]}"
    if len(parts) == 2 and parts[0] in _TOP_TENSORS:
        return f"{_TOP_TENSORS[parts[0]]}.{parts[1]}"
    return name


def _expected_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    hidden, inner, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    kv = config["num_key_value_heads"] * config["head_dim"]
    shapes = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,)}
    if not config["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (vocab, hidden)
    per_block = {
        "input_layernorm.weight": (hidden,),
        "post_attention_layernorm.weight": (hidden,),
        "self_attn.q_proj.weight": (hidden, hidden),
        "self_attn.k_proj.weight": (kv, hidden),
        "self_attn.v_proj.weight": (kv, hidden),
        "self_attn.o_proj.weight": (hidden, hidden),
        "mlp.gate_proj.weight": (inner, hidden),
        "mlp.up_proj.weight": (inner, hidden),
        "mlp.down_proj.weight": (hidden, inner),
    }
    for layer in range(config["num_hidden_layers"]):
        shapes.update({f"model.layers.{layer}.{name}": shape for name, shape in per_block.items()})
    return shapes


def _dequantize(tensor: Any) -> np.ndarray:
    """A GGUF tensor as float32 numpy, in numpy's dimension order (GGUF lists them reversed)."""
    import gguf  # deferred: see _read

    try:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    except NotImplementedError:
        raise UserError(
            f"GGUF tensor {tensor.name} has type {tensor.tensor_type.name}, which gguf cannot read"
        ) from None
    shape = tuple(int(size) for size in reversed(tensor.shape))
    return np.ascontiguousarray(values.reshape(shape), dtype=np.float32)


def unpermute_rotary(weight: np.ndarray, heads: int) -> np.ndarray:
    """Undoes llama.cpp's row permutation of a q or k projection (`[heads * head_dim, in]`).

    llama.cpp's `permute` reshapes the rows to `(heads, 2, head_dim // 2)` and
    swaps the last two axes, interleaving each head's two rotary halves; this
    reshapes to `(heads, head_dim // 2, 2)` and swaps them back.
    """
    rows = weight.shape[0]
    if rows % (2 * heads):
        raise UserError(f"a q/k projection with {rows} rows cannot be split into {heads} heads")
    split = weight.reshape(heads, rows // heads // 2, 2, *weight.shape[1:])
    return np.ascontiguousarray(split.swapaxes(1, 2).reshape(weight.shape))


def _tokenizer_files(fields: dict[str, Any], config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """tokenizer.json (byte-level BPE, control tokens as added tokens) and tokenizer_config.json."""
    tokens = [str(token) for token in _value(fields, "tokenizer.ggml.tokens", [])]
    types = list(_value(fields, "tokenizer.ggml.token_type", [1] * len(tokens)))
    vocab: dict[str, int] = {}
    for index, token in enumerate(tokens):
        vocab.setdefault(token, index)  # a repeated token keeps its first id
    added = [
        _added_token(index, token, kind == _TOKEN_CONTROL)
        for index, (token, kind) in enumerate(zip(tokens, types, strict=True))
        if kind in (_TOKEN_CONTROL, _TOKEN_USER_DEFINED)
    ]
    pre = str(_value(fields, "tokenizer.ggml.pre", "default"))
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": _PRE_TOKENIZERS.get(pre, _BYTE_LEVEL),
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": vocab,
            "merges": [str(merge) for merge in _value(fields, "tokenizer.ggml.merges", [])],
        },
    }
    return tokenizer, _tokenizer_config(fields, config, tokens)


def _added_token(index: int, token: str, special: bool) -> dict[str, Any]:
    flags = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False}
    return {"id": index, "content": token, **flags, "special": special}


def _tokenizer_config(fields: dict[str, Any], config: dict[str, Any], tokens: list[str]) -> dict[str, Any]:
    def token(key: str) -> str | None:
        index = config.get(key)
        return tokens[index] if index is not None and 0 <= index < len(tokens) else None

    eos = token("eos_token_id")
    if eos is None:
        raise UserError("GGUF model names no end-of-sequence token (tokenizer.ggml.eos_token_id)")
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": token("bos_token_id") or eos,  # keras-hub's Llama3Tokenizer needs one
        "eos_token": eos,
        "unk_token": token("unk_token_id"),
        "pad_token": token("pad_token_id"),
        "model_max_length": config["max_position_embeddings"],
        "clean_up_tokenization_spaces": False,
    }
    for key in ("add_bos_token", "add_eos_token"):
        if f"tokenizer.ggml.{key}" in fields:
            tokenizer_config[key] = bool(_value(fields, f"tokenizer.ggml.{key}"))
    template = _value(fields, "tokenizer.chat_template")
    if template is not None:
        tokenizer_config["chat_template"] = str(template)
    return tokenizer_config


def _conversion_record(
    parts: list[Path], fields: dict[str, Any], tensors: dict[str, Any], seconds: float
) -> dict[str, Any]:
    types = {name: tensor.tensor_type.name for name, tensor in tensors.items()}
    return {
        "format_version": FORMAT_VERSION,
        "sources": [{"name": p.name, "size": p.stat().st_size, "sha256": _sha256(p)} for p in parts],
        "sha256_of": "the whole file",
        "architecture": _value(fields, "general.architecture"),
        "model_name": _value(fields, "general.name"),
        "tokenizer_pre": _value(fields, "tokenizer.ggml.pre"),
        "tensor_type_counts": dict(sorted(Counter(types.values()).items())),
        "tensor_types": types,
        "stored_as": "float32",
        "gguf_version": importlib.metadata.version("gguf"),
        "seconds": round(seconds, 2),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _save_safetensors(weights: dict[str, np.ndarray], path: Path) -> None:
    from safetensors.numpy import save_file  # deferred: only a conversion needs it

    save_file(weights, str(path), metadata={"format": "pt"})


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _install(tmp: Path, out_dir: Path, replace: bool) -> None:
    """Renames the finished `tmp` to `out_dir`.

    An existing `out_dir` is replaced; without `replace` a complete one is kept instead.
    """
    atomic.fsync_tree(tmp)
    old = None
    if out_dir.exists() and (replace or not is_complete(out_dir)):
        old = out_dir.with_name(atomic.temporary_name(out_dir.name))
        os.replace(out_dir, old)
    try:
        os.replace(tmp, out_dir)
    except OSError:  # a directory appeared there meanwhile: keep it if it is a finished conversion
        if not is_complete(out_dir):
            raise
        log.debug("%s was written meanwhile by another process; keeping that one", out_dir)
    atomic.fsync_dir(out_dir.parent)
    if old is not None:
        atomic.remove(old)
