"""tune-wizard chat RUN_DIR|MODEL [--prompt TEXT]: talk to a trained run (base + adapter) or any model.

With --prompt it prints one answer and exits (greedy unless --temperature is given, so a check gives the
same answer every time); without, it is a multi-turn chat in the terminal (wizard/inference/chat_repl.py).
"""
from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("ref", metavar="RUN_DIR|MODEL",
                   help="a run folder (runs/<name>-<time>), a catalog alias, a hub id or a model folder")
    p.add_argument("--prompt", help="answer this one prompt, print the answer and exit")
    p.add_argument("--system", help="system prompt (default: the chat template's own)")
    p.add_argument("--temperature", type=float, default=None,
                   help="0 is greedy; default 0 with --prompt, 0.7 in the chat")
    p.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling (default 0.9)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="longest answer, in tokens (default 256)")


def check_sampling(temperature, top_p, max_new_tokens) -> None:
    from wizard.errors import UserError

    problems = []
    if temperature is not None and not 0 <= temperature <= 5:
        problems.append(f"--temperature {temperature}: must be between 0 (greedy) and 5")
    if not 0 < top_p <= 1:
        problems.append(f"--top-p {top_p}: must be in (0, 1]")
    if max_new_tokens < 1:
        problems.append(f"--max-new-tokens {max_new_tokens}: must be at least 1")
    if problems:
        raise UserError(problems)


def run(args) -> int:
    from wizard.inference.chat_repl import Settings, repl
    from wizard.inference.generation import answer
    from wizard.inference.loading import load_quietly

    check_sampling(args.temperature, args.top_p, args.max_new_tokens)
    loaded = load_quietly(args.ref)
    if args.prompt is not None:
        messages = ([{"role": "system", "content": args.system}] if args.system else [])
        messages.append({"role": "user", "content": args.prompt})
        got = answer(loaded, messages, max_new_tokens=args.max_new_tokens,
                     temperature=args.temperature or 0.0, top_p=args.top_p)
        print(got.text)
        return 0
    temperature = 0.7 if args.temperature is None else args.temperature
    return repl(loaded, Settings(temperature, args.top_p, args.max_new_tokens, args.system))
