"""The tokenizer half of a GGUF file, written the way llama.cpp's convert_hf_to_gguf.py writes it.

Byte-level BPE tokenizers only (tokenizer.ggml.model "gpt2": Llama 3, Qwen2/2.5, SmolLM, ...), which is
what the supported architectures use. The token list and types follow the converter's get_vocab_base;
merges, special token ids, add_bos/add_eos and the chat template come from gguf-py's own SpecialVocab
(the converter's code), read from the tokenizer saved to a scratch folder.
"""
from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import gguf

from wizard.errors import UserError

# llama.cpp names the pre-tokenizer (how text is split before BPE) by hashing the token ids of this text;
# the string and the hashes are llama.cpp's (convert_hf_to_gguf.py, get_vocab_base_pre).
CHKTXT = ("\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ "
          "🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ "
          "------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, "
          "'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL")
KNOWN_PRE = {
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",   # Llama 3.x
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",       # Qwen1.5/2/2.5
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",      # SmolLM, SmolLM2
    "c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d": "smaug-bpe",   # Llama-3 finetunes
    "9d032fcbd5501f4a38150912590928bfb36091efb5df11b8e2124b0390e3fb1e": "falcon3",
}


# Where the hash is unknown (a tokenizer class that swaps in its family's splitting, a new vocabulary), the
# split regex itself names the pre-tokenizer; these are the regexes llama.cpp implements under those names.
KNOWN_SPLITS = {
    (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
     r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"): "qwen2",
    (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
     r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"): "llama-bpe",
}


@dataclass
class Vocab:
    pre: str
    tokens: list[str]
    types: list[int]
    special: gguf.SpecialVocab
    add_prefix_space: bool = False


def _split_regex(state: dict) -> str | None:
    """The regex of a `Split, then ByteLevel without its own regex` pre-tokenizer, the llama-3/qwen2 shape."""
    pre = state.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    if len(steps) != 2 or steps[0].get("type") != "Split" or steps[1].get("type") != "ByteLevel":
        return None
    if steps[1].get("use_regex", True) or steps[0].get("behavior") != "Isolated" or steps[0].get("invert"):
        return None
    return (steps[0].get("pattern") or {}).get("Regex")


def pre_tokenizer(tokenizer, fallback: str | None = None) -> str:
    chkhsh = sha256(str(tokenizer.encode(CHKTXT)).encode()).hexdigest()
    if chkhsh in KNOWN_PRE:
        return KNOWN_PRE[chkhsh]
    by_regex = KNOWN_SPLITS.get(_split_regex(_backend_state(tokenizer)) or "")
    if by_regex:
        return by_regex
    if fallback:  # the base model came from a GGUF whose converter already named it
        return fallback
    raise UserError(f"this tokenizer's pre-tokenizer is not one the built-in GGUF writer knows "
                    f"(hash {chkhsh[:16]}...)",
                    hint="export the merged model with `tune-wizard export RUN_DIR --merge` and convert that folder "
                         "with llama.cpp's convert_hf_to_gguf.py, which knows more tokenizers")


def _backend_state(tokenizer) -> dict:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return json.loads(backend.to_str()) if backend is not None else {}


def _is_byte_level_bpe(state: dict) -> bool:
    if (state.get("model") or {}).get("type") != "BPE":
        return False
    return "ByteLevel" in json.dumps(state.get("pre_tokenizer")) or "ByteLevel" in json.dumps(state.get("decoder"))


def _adds_prefix_space(state: dict) -> bool:
    found = re.findall(r'"add_prefix_space":\s*(true|false)', json.dumps(state.get("pre_tokenizer")))
    return "true" in found


def _looks_special(token: str) -> bool:
    # The converter's does_token_look_special: some models leave control tokens unmarked.
    return (token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]") or (token.startswith("<|") and token.endswith("|>"))
            or (token.startswith("<｜") and token.endswith("｜>")) or (token.startswith("<unused") and token.endswith(">")))


def build_vocab(tokenizer, model_config, vocab_size: int, fallback_pre: str | None = None) -> Vocab:
    state = _backend_state(tokenizer)
    if not _is_byte_level_bpe(state):
        raise UserError("the built-in GGUF writer handles byte-level BPE tokenizers (Llama 3, Qwen2, SmolLM); "
                        "this model's tokenizer is not one",
                        hint="export with --merge and convert the folder with llama.cpp's convert_hf_to_gguf.py")
    pre = pre_tokenizer(tokenizer, fallback_pre)
    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise UserError(f"the tokenizer has ids up to {max(vocab.values())} but the model's embedding has only "
                        f"{vocab_size} rows", hint="resize the model's embeddings to the tokenizer before exporting")
    reverse = {i: t for t, i in vocab.items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:  # embedding rows past the tokenizer (e.g. Qwen pads to a multiple of 128)
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        token = reverse[i]
        if i in added:
            if not added[i].normalized:
                token = tokenizer.decode(tokenizer.encode(token, add_special_tokens=False))
            types.append(gguf.TokenType.CONTROL if added[i].special or _looks_special(token)
                         else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(token)
    with tempfile.TemporaryDirectory(prefix="tw-gguf-tok-") as tmp:
        tokenizer.save_pretrained(tmp)
        model_config.to_json_file(str(Path(tmp) / "config.json"))
        special = gguf.SpecialVocab(tmp, load_merges=True, n_vocab=vocab_size)
    if not special.merges:
        raise UserError("the tokenizer has no BPE merges, so llama.cpp could not tokenize with it",
                        hint="export with --merge and convert with llama.cpp's convert_hf_to_gguf.py")
    # llama.cpp's default for add_bos differs by tokenizer; write what this tokenizer actually does.
    for kind, token_id, pos in (("bos", tokenizer.bos_token_id, 0), ("eos", tokenizer.eos_token_id, -1)):
        if kind not in special.add_special_token and token_id is not None:
            ids = tokenizer("a")["input_ids"]
            adds = bool(ids) and ids[pos] == token_id
            if kind == "bos" or adds:  # the converter writes add_eos only where a model sets it
                special.add_special_token[kind] = adds
    return Vocab(pre, tokens, types, special, _adds_prefix_space(state))


def add_vocab(writer: gguf.GGUFWriter, vocab: Vocab) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    vocab.special.add_to_gguf(writer, quiet=True)
