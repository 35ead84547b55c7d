"""A GGUF byte-level BPE vocabulary as Hugging Face tokenizer.json and tokenizer_config.json."""

from __future__ import annotations

from typing import Any

from qa_assistant.errors import UserError
from qa_assistant.gguf.reading import field

_TOKEN_CONTROL, _TOKEN_USER_DEFINED = 3, 4  # llama.cpp's token types (1 is a normal token)
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


def tokenizer_files(fields: dict[str, Any], config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """tokenizer.json (byte-level BPE, control tokens as added tokens) and tokenizer_config.json."""
    tokens = [str(token) for token in field(fields, "tokenizer.ggml.tokens", [])]
    types = list(field(fields, "tokenizer.ggml.token_type", [1] * len(tokens)))
    vocab: dict[str, int] = {}
    for index, token in enumerate(tokens):
        vocab.setdefault(token, index)  # a repeated token keeps its first id
    added = [
        _added_token(index, token, kind == _TOKEN_CONTROL)
        for index, (token, kind) in enumerate(zip(tokens, types, strict=True))
        if kind in (_TOKEN_CONTROL, _TOKEN_USER_DEFINED)
    ]
    pre = str(field(fields, "tokenizer.ggml.pre", "default"))
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
            "merges": [str(merge) for merge in field(fields, "tokenizer.ggml.merges", [])],
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
            tokenizer_config[key] = bool(field(fields, f"tokenizer.ggml.{key}"))
    template = field(fields, "tokenizer.chat_template")
    if template is not None:
        tokenizer_config["chat_template"] = str(template)
    return tokenizer_config
