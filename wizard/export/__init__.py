"""After training: merge a run's adapter into its base (`merge.py`) and write GGUF files (`gguf_*.py`).

Both load the model through wizard.inference.loading, so the exports see the weights the way chat and serve do.
"""
