"""tune-wizard serve RUN_DIR|MODEL [--host 127.0.0.1] [--port 8000]: an OpenAI-compatible HTTP API.

Binds to 127.0.0.1 unless told otherwise: listening on a network is an explicit choice (--host 0.0.0.0, e.g.
inside a container with -p 8000:8000), and without an API key (--api-key, or TUNE_WIZARD_API_KEY; the flag
wins) it warns that anyone who can reach the port can use the model. With a key every route but /health needs
`Authorization: Bearer KEY`; /health stays open for load-balancer probes.

One generation at a time, in arrival order: at most --max-queue requests wait (more get 429 with Retry-After),
each for at most --queue-timeout seconds (then 503; its generation never starts). See wizard/inference/server.py.
"""
from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import os
import re
import socket
import sys

from wizard.errors import UserError

API_KEY_ENV = "TUNE_WIZARD_API_KEY"
MAX_QUEUE = 16         # the server's defaults (wizard/inference/server.py), here so --help needs no import of it
QUEUE_TIMEOUT = 300.0

EPILOG = f"""\
limits: one generation at a time, in arrival order. While one generates, at most --max-queue
requests wait (streaming ones too); one more gets HTTP 429 with a Retry-After header. A request
that waits longer than --queue-timeout seconds gets HTTP 503 and is never started. OpenAI clients
retry both by themselves.

access: with an API key (--api-key KEY, or the environment variable {API_KEY_ENV}; the flag
wins) every route but GET /health (all of /v1, and /docs) needs the header
'Authorization: Bearer KEY' (OpenAI clients: api_key=KEY), else HTTP 401. /health stays open for
load-balancer probes and then does not name the model. The environment variable keeps the key out
of the process list. Without a key, a --host other than loopback lets anyone who can reach the
port use the model (serve warns).
"""


def add_arguments(p) -> None:
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("ref", metavar="RUN_DIR|MODEL",
                   help="a run folder, a merged folder, a catalog alias, a hub id or a model folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-new-tokens-limit", type=int, default=1024, metavar="N",
                   help="the most tokens one request may ask for (default 1024); also the default max_tokens")
    p.add_argument("--model-name", help="the model id clients send (default: the run folder's or model's name)")
    p.add_argument("--max-queue", type=int, default=MAX_QUEUE, metavar="N",
                   help=f"requests that may wait while one generates (default {MAX_QUEUE}; 0: none); "
                        "more get HTTP 429 with Retry-After")
    p.add_argument("--queue-timeout", type=float, default=QUEUE_TIMEOUT, metavar="SECONDS",
                   help=f"the longest a request waits for its turn (default {QUEUE_TIMEOUT:g}); then HTTP 503, "
                        "not started")
    p.add_argument("--api-key", metavar="KEY",
                   help=f"require 'Authorization: Bearer KEY' on every route but /health (default: "
                        f"${API_KEY_ENV}, else none)")


def api_key(flag: str | None, environ=os.environ) -> tuple[str | None, str]:
    """(the key, where it came from: '--api-key' or the variable's name), or (None, '') when there is none.
    A key must be printable ASCII without spaces, since it travels in an HTTP header."""
    key, source = (flag, "--api-key") if flag is not None else (environ.get(API_KEY_ENV), API_KEY_ENV)
    if key is None:
        return None, ""
    if not key:
        raise UserError(f"{source} is empty: an empty key would let anyone in",
                        hint=f"give a key (e.g. from `python -c 'import secrets; print(secrets.token_urlsafe())'`), "
                             f"or unset {API_KEY_ENV} to serve without one")
    if not re.fullmatch(r"[\x21-\x7e]+", key):
        raise UserError(f"{source}: the key must be printable ASCII without spaces (it is sent in an HTTP header)")
    return key, source


def check_options(args) -> None:
    if args.max_new_tokens_limit < 1:
        raise UserError(f"--max-new-tokens-limit {args.max_new_tokens_limit}: must be at least 1")
    if args.max_queue < 0:
        raise UserError(f"--max-queue {args.max_queue}: must be 0 or more")
    if not 0 < args.queue_timeout < float("inf"):  # also refuses nan
        raise UserError(f"--queue-timeout {args.queue_timeout:g}: must be a positive number of seconds")


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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def banner(name: str, host: str, port: int, key_source: str = "") -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/v1"
    body = json.dumps({"model": name, "messages": [{"role": "user", "content": "Who are you?"}]})
    if not key_source:
        return "\n".join([
            f"serving {name} at {url} (OpenAI-compatible; Ctrl-C stops it)",
            f"  try: curl {url}/chat/completions -H 'Content-Type: application/json' -d '{body}'",
            f"  or any OpenAI client with base_url={url!r}, api_key='unused', model={name!r}"])
    # The key itself is not printed (logs travel); the lines read it from the environment variable.
    lines = [f"serving {name} at {url} (OpenAI-compatible, API key required; /health is open; Ctrl-C stops it)",
             f"  try: curl {url}/chat/completions -H \"Authorization: Bearer ${API_KEY_ENV}\" "
             f"-H 'Content-Type: application/json' -d '{body}'",
             f"  or any OpenAI client with base_url={url!r}, api_key=os.environ[{API_KEY_ENV!r}], model={name!r}"]
    if key_source != API_KEY_ENV:
        lines.append(f"  (with {API_KEY_ENV} set to the --api-key value in the client's environment)")
    return "\n".join(lines)


def exposure_warning(name: str, host: str, port: int, key: str | None) -> str | None:
    """What listening beyond this machine without a key exposes, and the fix; None when nothing is."""
    if key or is_loopback(host):
        return None
    where = "every address of this machine" if host in ("0.0.0.0", "::", "") else host
    return (f"warning: listening on {where} (--host {host}), port {port}, without an API key: anyone who can "
            f"reach this port can generate with the model {name} and list it.\n"
            f"  To require a key: --api-key KEY, or better {API_KEY_ENV}=KEY in the environment (kept out of the "
            "process list); clients then send 'Authorization: Bearer KEY' (OpenAI clients: api_key=KEY).")


def run(args) -> int:
    import uvicorn

    from wizard.inference.loading import load_quietly
    from wizard.inference.server import create_app

    check_options(args)
    key, key_source = api_key(args.api_key)
    check_port(args.host, args.port)  # before loading, so a taken port fails in a second, not a minute
    loaded = load_quietly(args.ref)
    name = args.model_name or loaded.name
    app = create_app(loaded, max_tokens_limit=args.max_new_tokens_limit, model_name=name,
                     max_queue=args.max_queue, queue_timeout=args.queue_timeout, api_key=key)
    print(banner(name, args.host, args.port, key_source), flush=True)
    warning = exposure_warning(name, args.host, args.port, key)
    if warning:
        print(warning, file=sys.stderr, flush=True)
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
