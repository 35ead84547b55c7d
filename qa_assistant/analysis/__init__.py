"""Experiments users can read: k-fold statistics, sweeps, paired comparisons, TensorBoard."""
