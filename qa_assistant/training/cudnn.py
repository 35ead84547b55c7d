"""Whether recurrent layers can use the fused cuDNN kernel on a GPU, and which setting prevents it.

On a GPU, Keras runs a `GRU`/`LSTM` layer with cuDNN's fused kernel (several
times faster than its step-by-step loop) only when the layer uses tanh and
sigmoid activations, biases, no recurrent dropout, no unrolling, and (GRU)
`reset_after=True`. Otherwise it silently takes the slow loop. The fused
kernel also needs every mask row right-padded and non-empty; the project's
tokenizers and tf.data pipeline guarantee both (one `[UNK]` id for an empty
text, padding appended at the end), which `tests/text/test_padding.py` checks
for every tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import keras

# Layer attribute -> the config key that sets it, where the config has one.
_CONFIG_KEYS = {"recurrent_dropout": "recurrent_dropout"}


def cudnn_blockers(kind: str, settings: Mapping[str, Any]) -> list[str]:
    """The settings of one recurrent layer that keep it off the fused cuDNN kernel.

    Args:
        kind: `gru` or `lstm`.
        settings: the layer's `activation`, `recurrent_activation` (names),
            `recurrent_dropout`, `unroll`, `use_bias`, `reset_after` (GRU) and
            `use_cudnn`.

    Returns:
        `name=value` for each setting that prevents the fused kernel; empty
        when the layer can use it.

    Example:

    >>> cudnn_blockers("gru", {"activation": "tanh", "recurrent_activation": "sigmoid",
    ...                        "recurrent_dropout": 0.2, "unroll": False, "use_bias": True,
    ...                        "reset_after": True, "use_cudnn": "auto"})
    ['recurrent_dropout=0.2']
    """
    required: dict[str, Any] = {
        "activation": "tanh",
        "recurrent_activation": "sigmoid",
        "recurrent_dropout": 0,
        "unroll": False,
        "use_bias": True,
        "use_cudnn": ("auto", True),
    }
    if kind == "gru":
        required["reset_after"] = True
    blockers = []
    for name, wanted in required.items():
        value = settings.get(name, wanted if not isinstance(wanted, tuple) else wanted[0])
        allowed = wanted if isinstance(wanted, tuple) else (wanted,)
        if value not in allowed:
            blockers.append(f"{name}={value}")
    return blockers


def _recurrent_layers(layer: keras.layers.Layer, path: str = "") -> Iterator[tuple[str, keras.layers.Layer]]:
    here = f"{path}/{layer.name}" if path else layer.name
    if isinstance(layer, keras.layers.Bidirectional):
        yield from _recurrent_layers(layer.forward_layer, here)
        yield from _recurrent_layers(layer.backward_layer, here)
    elif isinstance(layer, (keras.layers.GRU, keras.layers.LSTM)):
        yield here, layer
    for child in getattr(layer, "layers", []):
        yield from _recurrent_layers(child, here)


def _settings(layer: keras.layers.Layer) -> dict[str, Any]:
    cell = layer.cell
    return {
        "activation": keras.activations.serialize(cell.activation),
        "recurrent_activation": keras.activations.serialize(cell.recurrent_activation),
        "recurrent_dropout": cell.recurrent_dropout,
        "unroll": layer.unroll,
        "use_bias": cell.use_bias,
        "reset_after": getattr(cell, "reset_after", True),
        "use_cudnn": layer.use_cudnn,
    }


def _section(path: str) -> str | None:
    """The config section a layer's settings come from, judged by the submodel it is in."""
    for part in path.split("/"):
        if part in ("encoder", "decoder"):
            return part
    return None


def cudnn_warnings(model: keras.Model, device_types: Sequence[str]) -> list[str]:
    """One message per recurrent layer of `model` that would not use cuDNN on this machine's GPU.

    Empty without a GPU: on a CPU there is no fused kernel to lose.

    Args:
        model: a built model.
        device_types: logical device types present.

    Returns:
        Messages naming the layer and the setting to change (the config key
        where there is one).
    """
    if "GPU" not in device_types:
        return []
    messages = []
    for path, layer in _recurrent_layers(model):
        kind = "gru" if isinstance(layer, keras.layers.GRU) else "lstm"
        blockers = cudnn_blockers(kind, _settings(layer))
        if not blockers:
            continue
        section = _section(path)
        named = []
        for blocker in blockers:
            key = blocker.split("=", 1)[0]
            named.append(f"{section}.{blocker}" if section and key in _CONFIG_KEYS else f"layer {blocker}")
        messages.append(
            f"{kind.upper()} layer '{path}' will not use the fused cuDNN kernel on the GPU because of "
            f"{', '.join(named)}; it runs Keras' step-by-step loop instead (several times slower)"
        )
    return messages
