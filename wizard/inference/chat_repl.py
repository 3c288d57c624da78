"""The terminal chat: multi-turn, the model's chat template, tokens printed as they come.

Generation runs in a worker thread feeding a TextIteratorStreamer, so the main thread prints tokens and
still receives Ctrl-C: the first Ctrl-C during an answer stops that answer (the turn is dropped, so the
model never sees a half answer as its own); Ctrl-C at the prompt leaves with 130, Ctrl-D with 0.
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from wizard.inference.generation import Answer, answer
from wizard.inference.loading import Loaded

HELP = "commands: /reset (forget the conversation), /system TEXT (set the system prompt), /exit"
USER_PROMPT = "you> "
MODEL_PROMPT = "model> "


@dataclass
class Settings:
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 256
    system: str | None = None


@dataclass
class Conversation:
    system: str | None = None
    turns: list[dict] = field(default_factory=list)

    def messages(self, user_text: str | None = None) -> list[dict]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        msgs += self.turns
        if user_text is not None:
            msgs.append({"role": "user", "content": user_text})
        return msgs


def stream_answer(loaded: Loaded, messages: list[dict], settings: Settings,
                  write: Callable[[str], None]) -> Answer | None:
    """Print the answer as it is generated; None when Ctrl-C stopped it."""
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(loaded.tokenizer, skip_prompt=True, skip_special_tokens=True)
    cancel = threading.Event()
    result: dict = {}

    def work():
        try:
            result["answer"] = answer(loaded, messages, max_new_tokens=settings.max_new_tokens,
                                      temperature=settings.temperature, top_p=settings.top_p,
                                      streamer=streamer, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
            result["error"] = exc
            streamer.end()  # generate died before ending the stream; unblock the reader

    worker = threading.Thread(target=work, name="generate", daemon=True)
    worker.start()
    try:
        for piece in streamer:
            write(piece)
    except KeyboardInterrupt:
        cancel.set()
        for _ in streamer:  # generation stops at its next token; drain what is left
            pass
        worker.join()
        write("\n[stopped]\n")
        return None
    worker.join()
    if "error" in result:
        raise result["error"]
    write("\n")
    return result["answer"]


def repl(loaded: Loaded, settings: Settings, read: Callable[[str], str] = input,
         write: Callable[[str], None] | None = None) -> int:
    """Exit code: 0 on /exit or end of input, 130 on Ctrl-C at the prompt."""
    if write is None:
        def write(text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()
    try:
        import readline  # noqa: F401 - line editing and history for input()
    except ImportError:
        pass
    conv = Conversation(system=settings.system)
    write(f"chatting with {loaded.name} (temperature {settings.temperature}, top_p {settings.top_p}, "
          f"max {settings.max_new_tokens} new tokens)\n{HELP}; Ctrl-C stops an answer, Ctrl-D leaves\n")
    while True:
        try:
            line = read(USER_PROMPT)
        except EOFError:
            write("\n")
            return 0
        except KeyboardInterrupt:
            write("\n")
            return 130
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            command, _, arg = text.partition(" ")
            arg = arg.strip()
            if command in ("/exit", "/quit"):
                return 0
            if command == "/reset":
                conv.turns.clear()
                write("(conversation cleared)\n")
            elif command == "/system":
                if arg:
                    conv.system = arg
                    write("(system prompt set)\n")
                else:
                    write(f"(system prompt: {conv.system or 'the chat template default'})\n")
            elif command == "/help":
                write(HELP + "\n")
            else:
                write(f"unknown command {command}; {HELP}\n")
            continue
        write(MODEL_PROMPT)
        got = stream_answer(loaded, conv.messages(text), settings, write)
        if got is not None:
            conv.turns += [{"role": "user", "content": text}, {"role": "assistant", "content": got.text}]
