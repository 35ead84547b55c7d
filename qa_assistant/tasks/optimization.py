"""The optimizer a run trains with: Adam, a warm-up + decay schedule, a separate head rate.

Built from `train.learning_rate`, `train.warmup_epochs`, `train.schedule` and
`train.head_learning_rate`:

* `WarmupDecay` rises linearly to the peak rate over the warm-up steps,
  then stays (`constant`) or decays to 0 at the last step (`cosine`,
  `linear`). It is a pure function of the optimizer's step count, which the
  resume state saves and restores, so a resumed run continues the schedule
  exactly where it stopped.
* `HeadRateAdam` is Adam whose updates of the head's variables (everything
  outside the encoder) use the scheduled rate times a fixed factor
  (`head_learning_rate / learning_rate`): when personalising a base model the
  new head can learn fast while the encoder moves slowly.

Example:

>>> schedule = WarmupDecay(1e-3, warmup_steps=20, total_steps=200, decay="cosine")
>>> [round(float(schedule(step)), 6) for step in (0, 19, 110, 200)]
[5e-05, 0.001, 0.0005, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import keras
from keras import ops

from qa_assistant.config import TrainConfig

ENCODER_LAYER = "encoder"  # the name every encoder builder gives its model (models/encoders/registry.py)


@keras.saving.register_keras_serializable(package="qa_assistant")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak`, then constant, cosine or linear decay to 0 at `total_steps`.

    Args:
        peak: the learning rate after warm-up.
        warmup_steps: steps of the linear rise (0 = start at `peak`).
        total_steps: the step where a decay reaches 0.
        decay: `constant`, `cosine` or `linear`.
    """

    def __init__(self, peak: float, warmup_steps: int, total_steps: int, decay: str = "constant") -> None:
        if decay not in ("constant", "cosine", "linear"):
            raise ValueError(f"decay must be constant, cosine or linear; got {decay!r}")
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), self.warmup_steps + 1)
        self.decay = decay

    def __call__(self, step: Any) -> Any:
        step = ops.cast(step, "float32")
        warmup = float(max(self.warmup_steps, 1))
        # Step k of the warm-up trains at (k + 1) / warmup of the peak: no step is wasted at 0.
        rising = self.peak * ops.minimum((step + 1.0) / warmup, 1.0) if self.warmup_steps else self.peak
        if self.decay == "constant":
            return ops.cast(rising, "float32")
        span = float(self.total_steps - self.warmup_steps)
        done = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
        factor = 0.5 * (1.0 + ops.cos(math.pi * done)) if self.decay == "cosine" else 1.0 - done
        return ops.where(step < self.warmup_steps, rising, self.peak * factor)

    def get_config(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "decay": self.decay,
        }


@keras.saving.register_keras_serializable(package="qa_assistant")
class HeadRateAdam(keras.optimizers.Adam):
    """Adam whose head variables learn at `head_factor` times the (scheduled) learning rate.

    Call `set_head_variables` before the optimizer is built (before the
    first step); variables not named there use the plain rate.

    Args:
        head_factor: multiplier of the learning rate for head variables.
        **kwargs: passed to `keras.optimizers.Adam`.
    """

    def __init__(self, head_factor: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.head_factor = float(head_factor)
        self._head_ids: set[int] = set()
        self._head_indices: set[int] = set()

    def set_head_variables(self, variables: Sequence[Any]) -> None:
        """The variables that learn at the head rate (identity, not name)."""
        self._head_ids = {id(v) for v in variables}

    def build(self, var_list: Sequence[Any]) -> None:
        super().build(var_list)
        self._head_indices = {self._get_variable_index(v) for v in var_list if id(v) in self._head_ids}

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if self.head_factor != 1.0 and self._get_variable_index(variable) in self._head_indices:
            learning_rate = ops.cast(learning_rate, variable.dtype) * self.head_factor
        super().update_step(gradient, variable, learning_rate)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "head_factor": self.head_factor}


def build_optimizer(
    train: TrainConfig, steps_per_epoch: int | None, model: keras.Model | None = None
) -> keras.optimizers.Optimizer:
    """The run's optimizer (see the module docstring).

    Args:
        train: `learning_rate`, `head_learning_rate`, `warmup_epochs`,
            `schedule`, `epochs`.
        steps_per_epoch: batches per epoch (a schedule counts steps);
            `None` only when there is no schedule.
        model: the model whose non-encoder variables are the head (needed
            when `head_learning_rate` is set).

    Returns:
        Adam, or `HeadRateAdam` when the head has its own rate.

    Raises:
        ValueError: a schedule without `steps_per_epoch`.
    """
    rate: Any = train.learning_rate
    if train.warmup_epochs or train.schedule != "constant":
        if not steps_per_epoch:
            raise ValueError("a learning-rate schedule needs the number of steps per epoch")
        rate = WarmupDecay(
            train.learning_rate,
            warmup_steps=round(train.warmup_epochs * steps_per_epoch),
            total_steps=train.epochs * steps_per_epoch,
            decay=train.schedule,
        )
    if train.head_learning_rate is None or train.head_learning_rate == train.learning_rate:
        return keras.optimizers.Adam(rate)
    optimizer = HeadRateAdam(head_factor=train.head_learning_rate / train.learning_rate, learning_rate=rate)
    if model is not None:
        optimizer.set_head_variables(head_variables(model))
    return optimizer


def head_variables(model: keras.Model) -> list[Any]:
    """Trainable variables of `model` outside every layer named `encoder` (nested models included)."""
    in_encoders = {id(v) for layer in _encoders(model) for v in layer.weights}
    return [v for v in model.trainable_weights if id(v) not in in_encoders]


def _encoders(layer: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    for child in getattr(layer, "layers", []):
        if child.name == ENCODER_LAYER:
            yield child
        elif isinstance(child, keras.Model):
            yield from _encoders(child)
