"""Answer retrieval: a dual encoder (`task.py`), its similarity head and losses (`head.py`) and
the answer bank searched at serving time, with its calibrated fallback (`bank.py`)."""
