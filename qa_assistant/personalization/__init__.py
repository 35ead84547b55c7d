"""Starting from a base model: what `--init-from` points at (`sources.py`), copying weights by
name and shape with remapped rows (`transfer.py`), and the rows of a vocabulary's new words
(`vocabulary.py`). The training-time step that applies them is `training/initialize.py`."""
