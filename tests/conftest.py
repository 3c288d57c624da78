"""Shared fixtures: the repo root, a CLI runner in a subprocess, the bundled model's folder."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, cwd: Path | None = None, timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `tune-wizard ARGS` as a user would (a real process), capturing its output."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "wizard", *args], cwd=cwd or ROOT, capture_output=True,
                          text=True, timeout=timeout, env=full_env)


@pytest.fixture(scope="session")
def bundled_model_dir() -> Path:
    from wizard.engine.model_source import resolve

    return resolve("smollm2-135m-instruct")
