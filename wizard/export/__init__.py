"""After training: chat with a run, merge its adapter, write GGUF files, serve an OpenAI-compatible API.

Every part loads the model through wizard.infer.load_for_inference, so chat, serve and the exports see
the same weights the same way (a QLoRA adapter always on the base in 16/32-bit, never on 4-bit weights).
"""
