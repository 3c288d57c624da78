"""Generation from a run or a model: loading (`loading.py`: an adapter always on its base in 16/32-bit, never
on 4-bit weights), answers and stop tokens (`generation.py`), the chat REPL and the OpenAI-compatible server."""
