"""A tiny random ChatML causal LM saved as a keras-hub preset, for tests that must not load a real model."""

from __future__ import annotations

from pathlib import Path

import keras

SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def _byte_symbols() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values (byte-level BPE's base alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for _, c in sorted(zip(printable, codes, strict=True))]


def tiny_tokenizer():
    """A byte-level BPE tokenizer with SmolLM2's special tokens at ids 0-2 and a few merges."""
    import keras_hub

    merges = ["Ġ t", "h e", "Ġt he", "Ġ a", "i s", "e r", "o n", "a n"]
    vocabulary = {token: i for i, token in enumerate(SPECIAL)}
    for symbol in _byte_symbols():
        vocabulary.setdefault(symbol, len(vocabulary))
    for merge in merges:
        vocabulary.setdefault(merge.replace(" ", ""), len(vocabulary))
    return keras_hub.models.Llama3Tokenizer(
        vocabulary=vocabulary,
        merges=merges,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        misc_special_tokens={"<|endoftext|>"},
    )


def tiny_causal_lm(seed: int = 0):
    """A 2-layer random Llama3 causal LM over `tiny_tokenizer`'s vocabulary (no preprocessor)."""
    import keras_hub

    keras.utils.set_random_seed(seed)
    tokenizer = tiny_tokenizer()
    backbone = keras_hub.models.Llama3Backbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=2,
        num_query_heads=4,
        num_key_value_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
    )
    return keras_hub.models.Llama3CausalLM(backbone=backbone, preprocessor=None), tokenizer


def save_tiny_checkpoint(directory: Path, seed: int = 0) -> Path:
    """Writes the tiny LM as a Hugging Face checkpoint directory, the form a converted GGUF takes."""
    import keras_hub

    model, tokenizer = tiny_causal_lm(seed)
    preprocessor = keras_hub.models.Llama3CausalLMPreprocessor(tokenizer=tokenizer, sequence_length=64)
    full = keras_hub.models.Llama3CausalLM(backbone=model.backbone, preprocessor=preprocessor)
    full.export_to_transformers(str(directory))
    return directory
