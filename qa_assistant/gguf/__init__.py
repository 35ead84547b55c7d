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

from qa_assistant.gguf.convert import (
    CONVERSION_FILE,
    FORMAT_VERSION,
    OUTPUT_FILES,
    SPLIT_NAME,
    SUPPORTED_ARCHITECTURES,
    SUPPORTED_TOKENIZERS,
    cached_conversion,
    convert_gguf,
    gguf_parts,
    is_complete,
)
from qa_assistant.gguf.llama import llama3_rope_factors, unpermute_rotary
from qa_assistant.layout import CACHE_ENV, cache_root

__all__ = [
    "CACHE_ENV",
    "CONVERSION_FILE",
    "FORMAT_VERSION",
    "OUTPUT_FILES",
    "SPLIT_NAME",
    "SUPPORTED_ARCHITECTURES",
    "SUPPORTED_TOKENIZERS",
    "cache_root",
    "cached_conversion",
    "convert_gguf",
    "gguf_parts",
    "is_complete",
    "llama3_rope_factors",
    "unpermute_rotary",
]
