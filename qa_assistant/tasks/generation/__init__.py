"""Answer generation: the encoder-decoder task (`task.py`) and the graph functions that decode
answers in Python and inside the export alike (`generator.py`)."""
