"""The wizard (`tune-wizard init`): questions as data (`questions.py`), answers to a spec (`answers.py`), what
the machine and the data say (`context.py`) and the interactive flow (`flow.py`)."""
