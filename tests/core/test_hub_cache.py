"""A Hub id loads from the local HF cache with HF_HUB_OFFLINE=1 (no network), with
``--revision`` selecting a snapshot; an uncached id fails with one clear line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    """The on-disk layout huggingface_hub itself writes: refs/main → snapshots/<commit>."""
    cache = tmp_path_factory.mktemp("hf-cache")
    repo = cache / "models--ctxscope-test--tiny-llama"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for item in tiny_checkpoint.iterdir():
        shutil.copy(item, snapshot / item.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return cache


def _ctxscope(hub_cache: Path, home: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1", "CTXSCOPE_HOME": str(home),
           "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "ctxscope", *argv], capture_output=True, text=True, env=env,
                          timeout=300)


def test_hub_id_from_cache_offline(hub_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = _ctxscope(hub_cache, tmp_path, "sweep", "ctxscope-test/tiny-llama", "--revision", COMMIT, "--device", "cpu",
                     "--lengths", "16", "--min-repeats", "2", "--max-repeats", "2", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    run = json.loads(out.read_text())
    assert run["model"]["source"] == "ctxscope-test/tiny-llama" and run["model"]["revision"] == COMMIT
    assert run["model"]["random_weights"] is False and run["model"]["num_kv_heads"] == 2


def test_uncached_hub_id_offline_is_one_line(hub_cache: Path, tmp_path: Path) -> None:
    proc = _ctxscope(hub_cache, tmp_path, "sweep", "ctxscope-test/not-cached", "--device", "cpu", "--lengths", "16")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "HF_HUB_OFFLINE" in proc.stderr, proc.stderr
