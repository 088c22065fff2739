"""A KV-cache list away from this process, end to end (issue 22): ``--cache dynamic,fp8``
over SSH to the test sshd (one worker, the strategies on one loaded copy) and on a new
local Ray cluster (each strategy a cell): two runs come back, each with its strategy
recorded and fp8's cache under half the default's bytes, measured there."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import psutil
import pytest
# At collection, as the other remote tests' imports do: the first import of transformers'
# model configs warns (torch 2.13's jit deprecation), which is an error inside a test.
import transformers.models.llama  # noqa: F401

import ctxscope
from ctxscope.cli import main
from tests.remote.conftest import exited

FAST = ["--min-repeats", "2", "--max-repeats", "3", "--budget", "0.05"]
SWEEP = ["--device", "cpu", "--lengths", "64", "--mode", "decode", "--cache", "dynamic,fp8", *FAST]
#: The checkout under test: the remote worker must run this code, not whichever ctxscope
#: the environment has installed (an editable install may point at another checkout).
CHECKOUT = Path(ctxscope.__file__).resolve().parents[1]


def by_cache(out: Path) -> dict[str, dict]:
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    found = {r["settings"]["cache"]: r for r in runs}
    assert len(runs) == 2 and sorted(found) == ["dynamic", "fp8"], [r["settings"]["cache"] for r in runs]
    return found


def kv_bytes(run: dict) -> int:
    [point] = run["points"]
    assert run["status"] == "complete" and point["mode"] == "decode" and point["status"] == "ok", point
    return int(point["memory"]["kv_cache_bytes"])


@pytest.mark.slow  # 8 s (+ 4 s starting sshd) on this 2-core machine, over the suite's 5 s slow mark
def test_a_cache_list_over_ssh(capsys, ssh_env, tiny_config_files, tmp_path, workers) -> None:
    python = tmp_path / "python"  # the remote's Python: this one, importing this checkout
    python.write_text(f"#!/bin/sh\nPYTHONPATH={CHECKOUT} HF_HUB_OFFLINE=1 exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    out = tmp_path / "runs"
    code = main(["sweep", str(tiny_config_files["llama"]), *SWEEP, "--host", ssh_env.alias, "--remote-python",
                 str(python), "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 0, err
    runs = by_cache(out)
    assert all(r["environment"]["host"].startswith(ssh_env.alias) for r in runs.values())
    assert 0 < kv_bytes(runs["fp8"]) < kv_bytes(runs["dynamic"]) / 2
    assert len(workers) == 1 and exited(workers)  # one worker ran both strategies, and ended


@pytest.fixture
def local_cluster(monkeypatch: pytest.MonkeyPatch):
    """``--cluster local`` starts a cluster in this process; afterwards it is shut down
    and every process it started (found as this process's new children) waited for."""
    ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "ray[client]>=2.60")')
    from ctxscope.remote import ray_cluster

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        ray.shutdown()
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    started: list[psutil.Process] = []

    def mine() -> None:  # called while the cluster is up: its processes, not older children
        started.extend(p for p in me.children(recursive=True) if p.pid not in before)

    yield mine
    try:
        ray.shutdown()
    finally:
        ray_cluster._connected = None
    assert started and exited(started), [p.pid for p in started if p.is_running()]


@pytest.mark.slow  # a new Ray cluster and two tasks that import torch: 14 s on this 2-core machine
def test_a_cache_list_on_a_local_ray_cluster(capsys, local_cluster, tiny_config_files, tmp_path) -> None:
    out = tmp_path / "runs"
    code = main(["sweep", str(tiny_config_files["llama"]), *SWEEP, "--cluster", "local", "--out", str(out)])
    local_cluster()
    _, err = capsys.readouterr()
    assert code == 0, err
    assert "2 cell(s)" in err  # each strategy a task of its own
    runs = by_cache(out)
    assert all(r["environment"]["host"].startswith("ray node ") for r in runs.values())
    assert 0 < kv_bytes(runs["fp8"]) < kv_bytes(runs["dynamic"]) / 2
