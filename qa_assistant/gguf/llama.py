"""A GGUF `llama` model as a Hugging Face `LlamaForCausalLM`: its config.json and its weights under
Hugging Face names, with the q/k rows llama.cpp permuted for its rotary layout put back."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from qa_assistant.errors import UserError
from qa_assistant.gguf.reading import dequantize, field, float32_value, required_int

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


def model_config(fields: dict[str, Any], tensors: dict[str, Any]) -> dict[str, Any]:
    """config.json of a Hugging Face `LlamaForCausalLM` with the GGUF's hyperparameters."""
    if "token_embd.weight" not in tensors:
        raise UserError("GGUF model has no token_embd.weight tensor")
    hidden = required_int(fields, "llama.embedding_length")
    heads = required_int(fields, "llama.attention.head_count")
    kv_heads = int(field(fields, "llama.attention.head_count_kv", heads))
    head_dim = hidden // heads
    for key in ("llama.attention.key_length", "llama.rope.dimension_count"):
        if hidden % heads or int(field(fields, key, head_dim)) != head_dim:
            raise UserError(
                f"GGUF model has {key}={field(fields, key)} with {hidden} hidden units and {heads} heads; "
                "keras-hub's Llama3 needs hidden units / heads there (no separate head size, full rotary)"
            )
    theta = float32_value(field(fields, "llama.rope.freq_base", 10000.0))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": int(tensors["token_embd.weight"].shape[-1]),
        "hidden_size": hidden,
        "intermediate_size": required_int(fields, "llama.feed_forward_length"),
        "num_hidden_layers": required_int(fields, "llama.block_count"),
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
        "rms_norm_eps": float32_value(field(fields, "llama.attention.layer_norm_rms_epsilon", 1e-6)),
        "max_position_embeddings": int(field(fields, "llama.context_length", 2048)),
        "tie_word_embeddings": "output.weight" not in tensors,
        "torch_dtype": "float32",
    }
    for gguf_name, hf_name in (("bos", "bos"), ("eos", "eos"), ("padding", "pad"), ("unknown", "unk")):
        token_id = field(fields, f"tokenizer.ggml.{gguf_name}_token_id")
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
    kind = field(fields, "llama.rope.scaling.type", "none")
    if kind not in ("none", ""):
        raise UserError(
            f"GGUF model uses '{kind}' RoPE scaling; keras-hub's Llama3 supports only Llama 3.1's"
        )
    if "rope_freqs.weight" not in tensors:
        return None
    found = dequantize(tensors["rope_freqs.weight"]).reshape(-1)
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


def hf_weights(tensors: dict[str, Any], config: dict[str, Any]) -> dict[str, np.ndarray]:
    """The model's tensors under Hugging Face names and shapes, float32, q/k rows in Hugging Face order."""
    expected = _expected_shapes(config)
    weights = {}
    for name, tensor in tensors.items():
        if name == "rope_freqs.weight":
            continue  # became config.json's rope_scaling
        hf_name = _hf_name(name)
        if hf_name not in expected:
            raise UserError(f"GGUF tensor {name} has no place in a Llama model; this model is not supported")
        array = dequantize(tensor)
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
