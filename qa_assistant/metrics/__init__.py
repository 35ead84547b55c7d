"""Scoring, the same everywhere: per distinct question, ranking and classification metrics
(`ranking.py`), generation metrics (`generation.py`) and the TF-IDF baselines every run is
compared with (`baselines.py`)."""
