"""tune-wizard serve RUN_DIR|MODEL [--host 127.0.0.1] [--port 8000]: an OpenAI-compatible HTTP API.

Binds to 127.0.0.1 unless told otherwise: there is no authentication, so listening on a network is an
explicit choice (--host 0.0.0.0, e.g. inside a container with -p 8000:8000).
"""
from __future__ import annotations

import errno
import json
import socket
import sys

from wizard.errors import UserError


def add_arguments(p) -> None:
    p.add_argument("ref", metavar="RUN_DIR|MODEL",
                   help="a run folder, a merged folder, a catalog alias, a hub id or a model folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-new-tokens-limit", type=int, default=1024, metavar="N",
                   help="the most tokens one request may ask for (default 1024); also the default max_tokens")
    p.add_argument("--model-name", help="the model id clients send (default: the run folder's or model's name)")


def check_port(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise UserError(f"--port {port}: must be between 1 and 65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(f"--port {port}: already in use on {host}", hint="stop what is listening "
                                f"there, or pick another port, e.g. --port {port + 1}") from None
            raise UserError(f"--host {host}: cannot listen there ({exc.strerror})",
                            hint="use 127.0.0.1 (this machine) or 0.0.0.0 (all interfaces)") from None


def banner(name: str, host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/v1"
    body = json.dumps({"model": name, "messages": [{"role": "user", "content": "Who are you?"}]})
    lines = [f"serving {name} at {url} (OpenAI-compatible; Ctrl-C stops it)",
             f"  try: curl {url}/chat/completions -H 'Content-Type: application/json' -d '{body}'",
             f"  or any OpenAI client with base_url={url!r}, api_key='unused', model={name!r}"]
    if host not in ("127.0.0.1", "localhost", "::1"):
        lines.append(f"warning: listening on {host}: anyone who can reach this port can use the model "
                     "(there is no authentication)")
    return "\n".join(lines)


def run(args) -> int:
    import uvicorn

    from wizard.inference.loading import load_quietly
    from wizard.inference.server import create_app

    if args.max_new_tokens_limit < 1:
        raise UserError(f"--max-new-tokens-limit {args.max_new_tokens_limit}: must be at least 1")
    check_port(args.host, args.port)  # before loading, so a taken port fails in a second, not a minute
    loaded = load_quietly(args.ref)
    name = args.model_name or loaded.name
    app = create_app(loaded, max_tokens_limit=args.max_new_tokens_limit, model_name=name)
    print(banner(name, args.host, args.port), flush=True)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="info", access_log=True)
    server = uvicorn.Server(config)
    try:
        server.run()  # on Ctrl-C uvicorn shuts down cleanly, then re-raises the signal: exit 130 via the CLI
    finally:
        app.state.worker.shutdown(wait=False, cancel_futures=True)
    if not server.started:  # uvicorn logs why (e.g. the port was taken meanwhile)
        print("error: the server did not start (see above)", file=sys.stderr)
        return 1
    return 0
