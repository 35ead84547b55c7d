"""MPNet as a keras-hub backbone, read from a Hugging Face checkpoint (e.g. all-mpnet-base-v2).

keras-hub has no MPNet, so this module holds the network and its loader.
MPNet is a BERT-shaped encoder (post-LayerNorm blocks, GELU feed-forward)
with two differences that matter for porting:

* no token types, and absolute positions that start at 2 (the Hugging Face
  code numbers them from its padding id, 1, plus one);
* one relative-position bias, shared by every block and added to the
  attention scores: T5's bidirectional buckets (32 buckets, exact below 8
  tokens each way, logarithmic up to 128) times one learned value per head.

**Ids.** The checkpoint's vocabulary starts `<s> <pad> </s> <unk>`, but the
project pads with id 0 (`SubwordTokenizer`, the encoders' masks). The loader
therefore swaps two entries, `<s>` (0) and BERT's unused `[PAD]` (4), in the
vocabulary and in the rows of the token embedding. The network computes
the same function of the text; only the ids of those two tokens change.

`load_checkpoint(directory)` builds the backbone with the checkpoint's
weights; `load_tokenizer(directory)` the matching WordPiece tokenizer
(lower-cased, accents stripped, `<s> ... </s>` around every text).
`tests/models/test_mpnet.py` checks both against a NumPy reference of the
Hugging Face computation; `tests/models/test_mpnet_large.py` checks the real
all-mpnet-base-v2 against vectors that sentence-transformers computed.

Example:

>>> backbone = MPNetBackbone(vocabulary_size=10, num_layers=1, num_heads=2, hidden_dim=4,
...                          intermediate_dim=8, max_sequence_length=16)
>>> out = backbone({"token_ids": np.array([[4, 7, 2, 0]]), "padding_mask": np.array([[1, 1, 1, 0]])})
>>> tuple(out["sequence_output"].shape)
(1, 4, 4)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import keras
import keras_hub
import numpy as np
from keras import ops

from qa_assistant.errors import UserError

MODEL_TYPE = "mpnet"
_REQUIRED_CONFIG = (
    "vocab_size",
    "num_hidden_layers",
    "num_attention_heads",
    "hidden_size",
    "intermediate_size",
    "max_position_embeddings",
)
# The first position id: the Hugging Face code counts positions from its padding id (1) plus one.
POSITION_OFFSET = 2
# The ids swapped between the checkpoint and this project (see the module docstring).
CHECKPOINT_START_ID = 0
PROJECT_PAD_TOKEN = "[PAD]"


def relative_position_buckets(length: Any, num_buckets: int = 32, max_distance: int = 128) -> Any:
    """The `[length, length]` bucket of every (query, key) pair: T5's bidirectional scheme.

    Half the buckets are for keys after the query, half for keys before; in
    each half, distances below `num_buckets // 4` get a bucket each, longer
    ones share logarithmically wider buckets up to `max_distance`.

    Example:

    >>> [int(b) for b in ops.convert_to_numpy(relative_position_buckets(20))[0][:3]]
    [0, 17, 18]
    >>> [int(b) for b in ops.convert_to_numpy(relative_position_buckets(20))[19][-3:]]
    [2, 1, 0]
    """
    positions = ops.arange(length, dtype="int32")
    distance = positions[:, None] - positions[None, :]  # query minus key
    half = num_buckets // 2
    buckets = ops.cast(distance < 0, "int32") * half
    distance = ops.abs(distance)
    exact = half // 2
    scaled = ops.log(ops.cast(ops.maximum(distance, 1), "float32") / exact) / math.log(max_distance / exact)
    far = ops.minimum(exact + ops.cast(scaled * (half - exact), "int32"), half - 1)
    return buckets + ops.where(distance < exact, distance, far)


@keras.saving.register_keras_serializable(package="qa_assistant")
class MPNetPositionEmbedding(keras.layers.Layer):
    """Absolute position vectors of a `[batch, length, dim]` input, from position `POSITION_OFFSET` on."""

    def __init__(self, max_sequence_length: int, hidden_dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_sequence_length = int(max_sequence_length)
        self.hidden_dim = int(hidden_dim)

    def build(self, input_shape: Any) -> None:
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.max_sequence_length, self.hidden_dim),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )

    def call(self, inputs: Any) -> Any:
        length = ops.shape(inputs)[1]
        table = ops.cast(self.embeddings, self.compute_dtype)
        return ops.expand_dims(ops.slice(table, (POSITION_OFFSET, 0), (length, self.hidden_dim)), 0)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "max_sequence_length": self.max_sequence_length,
            "hidden_dim": self.hidden_dim,
        }


@keras.saving.register_keras_serializable(package="qa_assistant")
class MPNetRelativeBias(keras.layers.Layer):
    """The `[1, heads, length, length]` attention bias of a `[batch, length, ...]` input, shared by all blocks."""

    def __init__(self, num_heads: int, num_buckets: int = 32, max_distance: int = 128, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.num_buckets = int(num_buckets)
        self.max_distance = int(max_distance)

    def build(self, input_shape: Any) -> None:
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.num_buckets, self.num_heads),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )

    def call(self, inputs: Any) -> Any:
        buckets = relative_position_buckets(ops.shape(inputs)[1], self.num_buckets, self.max_distance)
        bias = ops.take(ops.cast(self.embeddings, self.compute_dtype), buckets, axis=0)  # [q, k, heads]
        return ops.expand_dims(ops.transpose(bias, (2, 0, 1)), 0)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "num_buckets": self.num_buckets,
            "max_distance": self.max_distance,
        }


@keras.saving.register_keras_serializable(package="qa_assistant")
class MPNetBlock(keras.layers.Layer):
    """One post-LayerNorm Transformer block whose attention scores get the shared relative bias."""

    def __init__(
        self,
        num_heads: int,
        intermediate_dim: int,
        dropout: float = 0.1,
        layer_norm_epsilon: float = 1e-5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim)
        self.dropout = float(dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)

    def build(self, input_shape: Any) -> None:
        hidden = int(input_shape[-1])
        if hidden % self.num_heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of {self.num_heads} heads")
        self.head_dim = hidden // self.num_heads
        common = {
            "dtype": self.dtype_policy,
            "kernel_initializer": keras.initializers.TruncatedNormal(stddev=0.02),
        }
        self.query = keras.layers.Dense(hidden, name="query", **common)
        self.key = keras.layers.Dense(hidden, name="key", **common)
        self.value = keras.layers.Dense(hidden, name="value", **common)
        self.attention_output = keras.layers.Dense(hidden, name="attention_output", **common)
        self.intermediate = keras.layers.Dense(self.intermediate_dim, name="intermediate", **common)
        self.output_dense = keras.layers.Dense(hidden, name="output", **common)
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="attention_norm"
        )
        self.output_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="output_norm"
        )
        self.softmax = keras.layers.Softmax(axis=-1, dtype=self.dtype_policy)
        self.drop = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        for dense in (self.query, self.key, self.value, self.attention_output):
            dense.build(input_shape)
        self.intermediate.build(input_shape)
        self.output_dense.build((*input_shape[:-1], self.intermediate_dim))
        self.attention_norm.build(input_shape)
        self.output_norm.build(input_shape)

    def _heads(self, x: Any) -> Any:
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], self.num_heads, self.head_dim))

    def call(self, x: Any, position_bias: Any, padding_mask: Any, training: bool | None = None) -> Any:
        query, key, value = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = ops.einsum("bqhd,bkhd->bhqk", query, key) / ops.cast(math.sqrt(self.head_dim), x.dtype)
        scores = scores + ops.cast(position_bias, scores.dtype)
        mask = ops.cast(padding_mask, "bool")[:, None, None, :]
        weights = self.drop(self.softmax(scores, mask=mask), training=training)
        context = ops.einsum("bhqk,bkhd->bqhd", weights, value)
        shape = ops.shape(x)
        context = ops.reshape(context, (shape[0], shape[1], shape[2]))
        x = self.attention_norm(x + self.drop(self.attention_output(context), training=training))
        inner = keras.activations.gelu(self.intermediate(x), approximate=False)
        return self.output_norm(x + self.drop(self.output_dense(inner), training=training))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }


@keras.saving.register_keras_serializable(package="qa_assistant")
class MPNetBackbone(keras_hub.models.Backbone):
    """MPNet's encoder: `{"token_ids", "padding_mask"}` -> `{"sequence_output"}`.

    Layer names follow keras-hub's BERT (`token_embedding`,
    `transformer_layer_<i>`, ...), so `encoder.freeze` treats it the same
    way: freezing N blocks also freezes every layer named `*embedding*`,
    the shared relative bias included.
    """

    position_offset = POSITION_OFFSET  # so a text fits in `max_sequence_length - position_offset` tokens

    def __init__(
        self,
        vocabulary_size: int,
        num_layers: int,
        num_heads: int,
        hidden_dim: int,
        intermediate_dim: int,
        dropout: float = 0.1,
        max_sequence_length: int = 514,
        num_buckets: int = 32,
        layer_norm_epsilon: float = 1e-5,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        tokens = keras.layers.Embedding(
            vocabulary_size,
            hidden_dim,
            embeddings_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            dtype=dtype,
            name="token_embedding",
        )(token_ids)
        positions = MPNetPositionEmbedding(
            max_sequence_length, hidden_dim, dtype=dtype, name="position_embedding"
        )(tokens)
        x = keras.layers.Add(dtype=dtype, name="embeddings_add")([tokens, positions])
        x = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="embeddings_layer_norm"
        )(x)
        x = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")(x)
        bias = MPNetRelativeBias(num_heads, num_buckets, dtype=dtype, name="relative_position_embedding")(x)
        for i in range(num_layers):
            block = MPNetBlock(
                num_heads,
                intermediate_dim,
                dropout,
                layer_norm_epsilon,
                dtype=dtype,
                name=f"transformer_layer_{i}",
            )
            x = block(x, position_bias=bias, padding_mask=padding_mask)
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask},
            outputs={"sequence_output": x},
            dtype=dtype,
            **kwargs,
        )
        self.vocabulary_size = int(vocabulary_size)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.hidden_dim = int(hidden_dim)
        self.intermediate_dim = int(intermediate_dim)
        self.dropout = float(dropout)
        self.max_sequence_length = int(max_sequence_length)
        self.num_buckets = int(num_buckets)
        self.layer_norm_epsilon = float(layer_norm_epsilon)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "hidden_dim": self.hidden_dim,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "max_sequence_length": self.max_sequence_length,
                "num_buckets": self.num_buckets,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config


def is_checkpoint(directory: str | Path) -> bool:
    """Whether `directory` is a Hugging Face MPNet checkpoint (`config.json` with `model_type: mpnet`)."""
    try:
        config = json.loads((Path(directory) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("model_type") == MODEL_TYPE


def load_checkpoint(directory: str | Path) -> MPNetBackbone:
    """The backbone of a Hugging Face MPNet checkpoint, with its weights (ids swapped as documented).

    Raises:
        UserError: a file is missing, or a weight has another shape than the config says.
    """
    from safetensors.numpy import load_file  # deferred: only this loader needs it

    directory = Path(directory)
    config = _read_json(directory / "config.json")
    missing = [key for key in _REQUIRED_CONFIG if not isinstance(config.get(key), int)]
    if missing:
        raise UserError(
            f"MPNet config '{directory / 'config.json'}' lacks {', '.join(missing)}; expected each as a number"
        )
    weights_file = directory / "model.safetensors"
    if not weights_file.is_file():
        raise UserError(
            f"MPNet checkpoint '{directory}' has no model.safetensors; expected the weights there"
        )
    _, pad_id = _vocabulary(directory)
    weights = {name.removeprefix("mpnet."): value for name, value in load_file(str(weights_file)).items()}
    backbone = MPNetBackbone(
        vocabulary_size=config["vocab_size"],
        num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"],
        hidden_dim=config["hidden_size"],
        intermediate_dim=config["intermediate_size"],
        dropout=config.get("hidden_dropout_prob", 0.1),
        max_sequence_length=config["max_position_embeddings"],
        num_buckets=config.get("relative_attention_num_buckets", 32),
        layer_norm_epsilon=config.get("layer_norm_eps", 1e-5),
    )
    try:
        _assign(backbone, weights, pad_id)
    except KeyError as error:
        raise UserError(
            f"MPNet checkpoint '{directory}' has no weight {error}; expected every MPNet weight"
        ) from None
    except ValueError as error:
        raise UserError(f"MPNet checkpoint '{directory}' does not match its config.json: {error}") from None
    return backbone


def _assign(backbone: MPNetBackbone, weights: dict[str, np.ndarray], pad_id: int) -> None:
    def dense(layer: keras.layers.Dense, prefix: str) -> None:
        layer.set_weights([weights[f"{prefix}.weight"].T, weights[f"{prefix}.bias"]])

    def norm(layer: keras.layers.LayerNormalization, prefix: str) -> None:
        layer.set_weights([weights[f"{prefix}.weight"], weights[f"{prefix}.bias"]])

    words = weights["embeddings.word_embeddings.weight"].copy()
    words[[CHECKPOINT_START_ID, pad_id]] = words[[pad_id, CHECKPOINT_START_ID]]
    backbone.get_layer("token_embedding").set_weights([words])
    backbone.get_layer("position_embedding").set_weights([weights["embeddings.position_embeddings.weight"]])
    norm(backbone.get_layer("embeddings_layer_norm"), "embeddings.LayerNorm")
    backbone.get_layer("relative_position_embedding").set_weights(
        [weights["encoder.relative_attention_bias.weight"]]
    )
    for i in range(backbone.num_layers):
        block = backbone.get_layer(f"transformer_layer_{i}")
        prefix = f"encoder.layer.{i}"
        for layer, name in (
            (block.query, "q"),
            (block.key, "k"),
            (block.value, "v"),
            (block.attention_output, "o"),
        ):
            dense(layer, f"{prefix}.attention.attn.{name}")
        norm(block.attention_norm, f"{prefix}.attention.LayerNorm")
        dense(block.intermediate, f"{prefix}.intermediate.dense")
        dense(block.output_dense, f"{prefix}.output.dense")
        norm(block.output_norm, f"{prefix}.output.LayerNorm")


def load_tokenizer(directory: str | Path) -> keras_hub.tokenizers.WordPieceTokenizer:
    """The checkpoint's WordPiece tokenizer with the project's ids (`[PAD]` is 0; see the module docstring).

    Raises:
        UserError: no `vocab.txt`, or one without the tokens MPNet needs.
    """
    directory = Path(directory)
    vocabulary, _ = _vocabulary(directory)
    settings_file = directory / "tokenizer_config.json"
    settings = _read_json(settings_file) if settings_file.is_file() else {}
    lowercase = bool(settings.get("do_lower_case", True))
    strip_accents = settings.get("strip_accents")
    tokenizer = keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=vocabulary,
        lowercase=lowercase,
        strip_accents=lowercase if strip_accents is None else bool(strip_accents),
        oov_token="[UNK]",
    )
    tokenizer.cls_token, tokenizer.sep_token = "<s>", "</s>"
    return tokenizer


def _vocabulary(directory: Path) -> tuple[list[str], int]:
    """The checkpoint's vocabulary with `<s>` and `[PAD]` swapped, and the id `<s>` moved from 0 to."""
    path = directory / "vocab.txt"
    if not path.is_file():
        raise UserError(f"MPNet checkpoint '{directory}' has no vocab.txt; expected its WordPiece vocabulary")
    vocabulary = path.read_text(encoding="utf-8").splitlines()
    missing = [t for t in ("</s>", "[UNK]", PROJECT_PAD_TOKEN) if t not in vocabulary]
    first = vocabulary[CHECKPOINT_START_ID] if vocabulary else None
    if missing or first != "<s>":
        lacks = f" and lacks {', '.join(missing)}" if missing else ""
        raise UserError(
            f"'{path}' starts with {first!r}{lacks}; expected MPNet's vocabulary (<s> first, with </s>, [UNK], [PAD])"
        )
    pad_id = vocabulary.index(PROJECT_PAD_TOKEN)
    vocabulary[CHECKPOINT_START_ID], vocabulary[pad_id] = vocabulary[pad_id], vocabulary[CHECKPOINT_START_ID]
    return vocabulary, pad_id


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read '{path}' ({error}); expected a JSON file") from None
    if not isinstance(value, dict):
        raise UserError(f"'{path}' holds a {type(value).__name__}; expected a JSON object")
    return value
