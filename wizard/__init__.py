"""tune-wizard: fine-tune a large language model on one modest GPU by answering a few questions."""
__version__ = "0.1.0"
