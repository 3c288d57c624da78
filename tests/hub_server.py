"""A Hugging Face hub on 127.0.0.1 for tests: real HTTP, answering the API routes huggingface_hub calls.

    with HubServer(models={"owner/name": {"config.json": b"{...}"}}, datasets={"owner/data": {}}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)

It knows the repositories it was given and nothing else, answers a missing one as the hub does (404 with the
RepoNotFound error code), and records every request so a test can tell that nothing was asked.
`gateway=True` makes it a proxy page instead: 404 to everything, with no hub error code.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import re
import socket
import threading

SHA = "0123456789abcdef0123456789abcdef01234567"
_INFO = re.compile(r"^/api/(models|datasets)/([^/]+/[^/?]+)(?:/revision/[^/?]+)?(?:\?.*)?$")
_TREE = re.compile(r"^/api/(models|datasets)/([^/]+/[^/]+)/tree/[^/?]+(?:\?.*)?$")
_FILE = re.compile(r"^/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class HubServer:
    def __init__(self, models: dict | None = None, datasets: dict | None = None, gateway: bool = False):
        self.repos = {("models", k): v for k, v in (models or {}).items()}
        self.repos.update({("datasets", k): v for k, v in (datasets or {}).items()})
        self.gateway = gateway
        self.requests: list[str] = []
        self._srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._srv.server_address[1]}"

    def __enter__(self) -> HubServer:
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._srv.shutdown()
        self._srv.server_close()

    def _handler(self):
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                self._answer(body=True)

            def do_HEAD(self):  # noqa: N802
                self._answer(body=False)

            def _answer(self, body: bool) -> None:
                hub.requests.append(f"{self.command} {self.path}")
                if hub.gateway:
                    return self._send(404, b"<html>not here</html>", body, {"Content-Type": "text/html"})
                m = _INFO.match(self.path)
                if m:
                    files = hub.repos.get((m.group(1), m.group(2)))
                    if files is None:
                        return self._not_found(body)
                    info = {"id": m.group(2), "sha": SHA, "private": False,
                            "siblings": [{"rfilename": name} for name in files]}
                    return self._send(200, json.dumps(info).encode(), body, {"Content-Type": "application/json"})
                m = _TREE.match(self.path)
                if m:
                    files = hub.repos.get((m.group(1), m.group(2)))
                    if files is None:
                        return self._not_found(body)
                    tree = [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                            for name, data in files.items()]
                    return self._send(200, json.dumps(tree).encode(), body, {"Content-Type": "application/json"})
                m = _FILE.match(self.path)
                if m:
                    files = hub.repos.get(("datasets" if m.group(1) else "models", m.group(2)))
                    if files is None:
                        return self._not_found(body)
                    data = files.get(m.group(4))
                    if data is None:
                        return self._send(404, b"", body, {"X-Error-Code": "EntryNotFound"})
                    return self._send(200, data, body, {"X-Repo-Commit": SHA,
                                                        "ETag": f'"{hashlib.sha256(data).hexdigest()}"'})
                return self._not_found(body)

            def _not_found(self, body: bool) -> None:
                self._send(404, b'{"error": "Repository not found"}', body,
                           {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found",
                            "Content-Type": "application/json"})

            def _send(self, status: int, data: bytes, body: bool, headers: dict) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused at once)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
