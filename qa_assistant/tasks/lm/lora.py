"""LoRA adapters that survive Keras weight files.

keras-hub's `Backbone.enable_lora` gives the attention projections
low-rank factors A and B (B starts at zero). Keras' weight files
(`model.save_weights`, used by the best-epoch checkpoint and the resume
snapshots) store such a layer's kernel *merged* with `A @ B`, and loading
one sets A and B back to zero. The model still computes the same function,
but the adapter is gone: the run would save an empty adapter, and a resumed
run could not train it again (with A and B both zero, neither gets a
gradient). `enable_lora` here makes each adapted layer save and load its
variables as they are, the base kernel and the two factors apart.
"""

from __future__ import annotations

from typing import Any


def enable_lora(backbone: Any, rank: int, targets: list[str]) -> None:
    """`backbone.enable_lora(rank, targets)`, with weight files that keep the adapters apart."""
    backbone.enable_lora(rank, target_layer_names=targets)
    for layer in backbone._flatten_layers(include_self=False):
        if getattr(layer, "lora_enabled", False):
            _keep_apart(layer)


def _keep_apart(layer: Any) -> None:
    def save_own_variables(store: Any) -> None:
        for i, variable in enumerate(layer.weights):
            store[str(i)] = variable

    def load_own_variables(store: Any) -> None:
        for i, variable in enumerate(layer.weights):
            variable.assign(store[str(i)])

    # Set on the instance, past Keras' attribute tracking: only these layers change.
    object.__setattr__(layer, "save_own_variables", save_own_variables)
    object.__setattr__(layer, "load_own_variables", load_own_variables)
