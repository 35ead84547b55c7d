"""`qa-assistant` on N logical CPU devices, so a mirrored strategy has N replicas without a GPU.

Usage: `python -m tests.training.logical_cpus N ARGS...` — then the same
arguments as `qa-assistant`. Logical devices must be configured before
TensorFlow starts its runtime, hence a process of its own.
"""

from __future__ import annotations

import sys

import tensorflow as tf

from qa_assistant import cli

if __name__ == "__main__":
    count = int(sys.argv[1])
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    sys.exit(cli.main(sys.argv[2:]))
