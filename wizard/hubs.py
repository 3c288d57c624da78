"""The model and dataset hubs, Hugging Face and ModelScope: which one `hub: auto` means, where it is, what an id
looks like, and whether a hub answers and holds a repository.

Questions go through huggingface_hub's and modelscope's own APIs, each under a hard deadline: a machine with
no network must hear so in seconds, and the clients alone take longer (modelscope retries a refused
connection for ~16 s; name resolution ignores socket timeouts). huggingface_hub reads HF_ENDPOINT and
HF_HUB_OFFLINE once, at import; here they are read at each call, so a mirror chosen in the wizard or a flag
set later (a test's, a user's) is obeyed, whatever was imported first.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

TITLES = {"huggingface": "Hugging Face", "modelscope": "ModelScope"}
DEFAULT_ENDPOINTS = {"huggingface": "https://huggingface.co", "modelscope": "https://www.modelscope.cn"}
TIMEOUT_S = 3.0
# owner/name, as both hubs name repositories. A Hugging Face dataset may also be a bare canonical name (`imdb`).
REPO_ID_PATTERN = r"[A-Za-z0-9][\w.-]*/[\w.-]+"
_REPO_ID = re.compile(rf"^{REPO_ID_PATTERN}$")
_BARE_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")
# A repository nobody is expected to own: any answer about it, found or not, shows that a hub's API is there.
_PROBE_ID = "tune-wizard/hub-check"


def env_on(name: str) -> bool:
    """An environment flag set as 1, true, yes or on (any case): the form the hubs' own clients accept."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def is_repo_id(text: str, bare_name_ok: bool = False) -> bool:
    return bool(_REPO_ID.match(text) or (bare_name_ok and _BARE_NAME.match(text)))


def which(hub: str) -> str:
    """`auto` resolved: ModelScope when USE_MODELSCOPE_HUB is set (ms-swift's switch), else Hugging Face."""
    if hub == "auto":
        return "modelscope" if env_on("USE_MODELSCOPE_HUB") else "huggingface"
    return hub


def endpoint(hub: str) -> str:
    """The hub's base URL: HF_ENDPOINT; for ModelScope, its client's order (MODELSCOPE_ENDPOINT, then the older
    MODELSCOPE_DOMAIN, which may be a bare host name)."""
    if hub == "huggingface":
        url = os.environ.get("HF_ENDPOINT", "").strip()
    else:
        url = os.environ.get("MODELSCOPE_ENDPOINT", "").strip() or os.environ.get("MODELSCOPE_DOMAIN", "").strip()
        if url and "://" not in url:
            url = "https://" + url
    return (url or DEFAULT_ENDPOINTS[hub]).rstrip("/")


def offline_reason(hub: str, kind: str = "model") -> str | None:
    """Why this hub must not be asked (an offline flag the user set), or None."""
    if hub != "huggingface":
        return None
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") + (("HF_DATASETS_OFFLINE",) if kind == "dataset" else ())
    for name in names:
        if env_on(name):
            return f"{name} is set"
    return None


@contextlib.contextmanager
def hf_offline(on: bool):
    """huggingface_hub's offline flag (and datasets', once imported) set to `on` for the block: the libraries
    froze it at import, from whatever the environment said then."""
    import huggingface_hub.constants as hub_constants

    targets = [(hub_constants, "HF_HUB_OFFLINE")]
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        targets += [(datasets_config, "HF_HUB_OFFLINE"), (datasets_config, "HF_DATASETS_OFFLINE")]
    saved = [(module, name, getattr(module, name)) for module, name in targets]
    for module, name in targets:
        setattr(module, name, on)
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


@dataclass(frozen=True)
class Reply:
    """What a hub said about a repository."""

    hub: str
    repo_id: str
    kind: str                 # model | dataset
    found: bool | None        # None: the hub could not be asked
    why: str = ""             # why it could not be asked, or what it said

    @property
    def problem(self) -> str:
        """For an error message, when found is not True."""
        title = TITLES.get(self.hub, self.hub)
        if self.found is False:
            return f"the {title} hub has no {self.kind} '{self.repo_id}'" + (f" ({self.why})" if self.why else "")
        return f"the {title} hub could not be reached ({self.why})"


def ask(hub: str, repo_id: str, kind: str = "model", timeout: float = TIMEOUT_S, url: str | None = None) -> Reply:
    """Does `hub` (at `url`, default its endpoint()) hold the model or dataset `repo_id`? Answers within about
    `timeout` seconds."""
    hub = which(hub)
    reason = offline_reason(hub, kind)
    if reason:
        return Reply(hub, repo_id, kind, None, reason)
    url = (url or endpoint(hub)).rstrip("/")
    where = urlparse(url).netloc or url
    try:
        call = (_hf_call if hub == "huggingface" else _ms_call)(url, repo_id, kind, timeout)
    except ImportError as exc:
        return Reply(hub, repo_id, kind, None, f"its client is not installed ({exc.name})")
    result: list[tuple[bool | None, str]] = []

    def work() -> None:
        result.append(call())

    # The client's import is done above, outside the deadline; only the network wait counts.
    with hf_offline(False) if hub == "huggingface" else contextlib.nullcontext():
        worker = threading.Thread(target=work, name=f"tune-wizard-{hub}-check", daemon=True)
        worker.start()
        worker.join(timeout + 0.5)
    if not result:
        return Reply(hub, repo_id, kind, None, f"{where}: no answer in {timeout:g} s")
    found, why = result[0]
    return Reply(hub, repo_id, kind, found, f"{where}: {why}" if found is None else why)


def exists(hub: str, repo_id: str, kind: str = "model", timeout: float = TIMEOUT_S) -> bool | None:
    """True or False when the hub answered; None when it could not be asked."""
    return ask(hub, repo_id, kind, timeout).found


def answers(hub: str, timeout: float = TIMEOUT_S, url: str | None = None) -> bool:
    """Does the hub's API answer at all (and may be asked: no offline flag)?"""
    return ask(hub, _PROBE_ID, timeout=timeout, url=url).found is not None


def reachable(timeout: float = 2.0) -> dict[str, bool]:
    """Which hubs' APIs answer within about `timeout` seconds, asked concurrently."""
    out = {hub: False for hub in TITLES}

    def probe(hub: str) -> None:
        out[hub] = answers(hub, timeout)

    threads = [threading.Thread(target=probe, args=(hub,), daemon=True) for hub in TITLES]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 2.0)  # beyond ask's own deadline: a client's import on a loaded machine
    return dict(out)


def _hf_call(url: str, repo_id: str, kind: str, timeout: float) -> Callable[[], tuple[bool | None, str]]:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, HFValidationError, RepositoryNotFoundError

    api = HfApi(endpoint=url)
    info = api.dataset_info if kind == "dataset" else api.model_info

    def call() -> tuple[bool | None, str]:
        try:
            info(repo_id, timeout=timeout)
        except GatedRepoError:
            return True, "gated: accept its terms on the hub and log in (`hf auth login`)"
        except RepositoryNotFoundError:
            return False, "or it is private: log in with `hf auth login`"
        except HFValidationError as exc:
            return False, _describe(exc)
        except HfHubHTTPError as exc:
            # Not the hub's "repository not found" (which carries its own error code): a gateway or proxy
            # that answers every path, or a hub in trouble.
            status = exc.response.status_code if exc.response is not None else "?"
            return None, f"answered HTTP {status}, not as a Hugging Face hub"
        except Exception as exc:  # noqa: BLE001 - refused, DNS, TLS, timeout, a reply that is not JSON
            return None, _describe(exc)
        return True, ""

    return call


def _ms_call(url: str, repo_id: str, kind: str, timeout: float) -> Callable[[], tuple[bool | None, str]]:
    from modelscope.hub.api import HubApi

    with warnings.catch_warnings():
        # Its default configuration warns that MODELSCOPE_DOMAIN is deprecated; endpoint() reads that for it.
        warnings.simplefilter("ignore", FutureWarning)
        api = HubApi(endpoint=url, timeout=max(1, round(timeout)), max_retries=1)

    def call() -> tuple[bool | None, str]:
        try:
            found = api.repo_exists(repo_id, repo_type=kind, re_raise=True)
        except Exception as exc:  # noqa: BLE001 - the client raises its own types for network trouble
            return None, _describe(exc)
        return bool(found), ""

    return call


def _describe(exc: BaseException) -> str:
    """The root cause in a few words: clients wrap "Connection refused" in several layers of their own text."""
    root = exc
    for _ in range(10):
        inner = root.__cause__ or root.__context__
        if inner is None:
            break
        root = inner
    if isinstance(root, OSError) and root.strerror:
        return root.strerror
    lines = str(root).strip().splitlines() or str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(root).__name__


def download(hub: str, repo_id: str, *, to: str | None = None, include: list[str] | None = None,
             revision: str | None = None) -> str:
    """A model repository's files (those matching `include`'s globs, or all), into folder `to` or the hub
    client's cache; returns the folder. The hub is asked first, within seconds, so a wrong id or a hub that
    cannot be reached is said at once; wizard.errors.ModelError says which."""
    from wizard.errors import ModelError

    hub = which(hub)
    reply = ask(hub, repo_id)
    if reply.found is not True:
        raise ModelError(f"{repo_id}: {reply.problem}", hint="check the id (owner/name, as on the model's page) "
                         "and the hub (--hub)" if reply.found is False else
                         "check the network, HF_ENDPOINT / MODELSCOPE_ENDPOINT, or an offline flag")
    try:
        if hub == "modelscope":
            from modelscope import snapshot_download as ms_download

            return str(ms_download(repo_id, revision=revision or "master", endpoint=endpoint(hub), local_dir=to,
                                   allow_patterns=include))
        from huggingface_hub import snapshot_download

        with hf_offline(False):
            return str(snapshot_download(repo_id, revision=revision, endpoint=endpoint(hub), local_dir=to,
                                         allow_patterns=include))
    except ImportError as exc:
        raise ModelError(f"{repo_id}: the {TITLES[hub]} client is not installed ({exc.name})",
                         hint="pip install modelscope" if hub == "modelscope" else "pip install huggingface_hub") \
            from None


# What the hub clients keep inside a download folder: a folder holding one of these is a previous download.
CLIENT_STATE = (".cache/huggingface", "._____temp", ".msc")


def target_problem(folder: str) -> str | None:
    """Why files must not be downloaded into `folder` (a file; a folder holding someone's other files, which
    the download could overwrite), or None: new, empty, or a previous download."""
    from pathlib import Path

    path = Path(folder).expanduser()
    if path.exists() and not path.is_dir():
        return f"{folder} is a file, not a folder"
    if path.is_dir() and any(path.iterdir()) and not any((path / s).exists() for s in CLIENT_STATE):
        return f"{folder} holds other files, which a download could overwrite: give a new or empty folder"
    return None
