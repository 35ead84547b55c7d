"""The memory estimate that refuses a fine-tuning run which cannot fit, before it starts."""

from __future__ import annotations

import json

import pytest

from qa_assistant.errors import UserError
from qa_assistant.tasks.lm import memory
from tests.tasks.tiny_lm import tiny_causal_lm


def _config_of(backbone) -> dict:
    """The Hugging Face `config.json` fields of a keras-hub Llama backbone."""
    return {
        "vocab_size": backbone.vocabulary_size,
        "hidden_size": backbone.hidden_dim,
        "intermediate_size": backbone.intermediate_dim,
        "num_hidden_layers": backbone.num_layers,
        "num_attention_heads": backbone.num_query_heads,
        "num_key_value_heads": backbone.num_key_value_heads,
        "tie_word_embeddings": backbone.tie_word_embeddings,
    }


def test_parameter_count_matches_the_built_model():
    model, _ = tiny_causal_lm()
    assert memory.parameter_count(_config_of(model.backbone)) == model.count_params()


def test_smollm2_parameters_from_its_config():
    # SmolLM2-135M's config.json fields; keras-hub counts 134,515,008 weights for it.
    config = {
        "vocab_size": 49152,
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "head_dim": 64,
        "tie_word_embeddings": True,
    }
    assert memory.parameter_count(config) == 134_515_008
    lora = memory.training_bytes(config, full=False, batch_size=8, length=160)
    full = memory.training_bytes(config, full=True, batch_size=8, length=160)
    assert full - lora == 3 * 4 * 134_515_008  # gradients and Adam's two moments
    assert memory.training_bytes(config, full=False, batch_size=16, length=160) > lora


def test_a_run_that_cannot_fit_is_refused_with_the_keys_to_lower(tmp_path, monkeypatch):
    model, _ = tiny_causal_lm()
    (tmp_path / "config.json").write_text(json.dumps(_config_of(model.backbone)), encoding="utf-8")
    monkeypatch.setattr(memory, "available_bytes", lambda: 1 << 20)
    with pytest.raises(UserError) as error:
        memory.check_memory(str(tmp_path), full=True, batch_size=8, length=96)
    message = str(error.value)
    assert "\n" not in message
    assert "about 2.0 GiB" in message  # the runtime's allowance and a tiny model
    assert "train.batch_size (8)" in message
    assert "example length (96 tokens: lm.max_length)" in message
    assert "LoRA" in message
    monkeypatch.setattr(memory, "available_bytes", lambda: 64 << 30)
    memory.check_memory(str(tmp_path), full=True, batch_size=8, length=96)  # fits: no error


def test_no_local_config_or_unknown_memory_is_not_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 1)
    memory.check_memory("hf://HuggingFaceTB/SmolLM2-135M-Instruct", full=True, batch_size=8, length=96)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}), encoding="utf-8")
    memory.check_memory(str(tmp_path), full=True, batch_size=8, length=96)  # not a Llama config


def test_available_memory_is_read_from_the_system():
    available = memory.available_bytes()
    assert available is None or available > 0
