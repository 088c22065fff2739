"""``--host … --remote-install`` on a host where ctxscope was never installed (the test
sshd; a Python with torch and transformers but neither ctxscope nor platformdirs): this
ctxscope's wheel goes over the same connection into a venv in the host's cache, the
sweep runs from it, and the next run reuses it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import ctxscope
from ctxscope.cli import main
from tests.remote.conftest import bare_python, exited

FAST = ["--min-repeats", "2", "--max-repeats", "3", "--budget", "0.05", "--device", "cpu"]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(the remote Python, the host's cache folder)."""
    root = tmp_path_factory.mktemp("host")
    python = bare_python(root / "env", without=("ctxscope", "platformdirs"))
    cache = root / "cache"
    wrapper = root / "python"  # the host's own cache, not this machine user's ~/.cache
    wrapper.write_text(f"#!/bin/sh\nXDG_CACHE_HOME={cache} exec {python} \"$@\"\n")
    wrapper.chmod(0o755)
    return str(wrapper), cache


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_a_host_without_ctxscope_says_how_to_bring_it(capsys, ssh_env, host, tiny_config_files) -> None:
    python, _ = host
    code, err = cli(capsys, "sweep", str(tiny_config_files["llama"]), "--host", ssh_env.alias, "--remote-python",
                    python, *FAST)
    assert code == 2 and "has no ctxscope installed (pass --remote-install" in err.splitlines()[0], err


def test_remote_install_runs_the_sweep_and_is_reused(capsys, ssh_env, host, tiny_config_files, tmp_path,
                                                     workers) -> None:
    python, cache = host
    args = [str(tiny_config_files["llama"]), "--lengths", "16,32", "--host", ssh_env.alias, "--remote-python", python,
            "--remote-install", *FAST]
    code, err = cli(capsys, "sweep", *args, "--out", str(tmp_path / "first.json"))
    assert code == 0, err
    assert f"installing ctxscope {ctxscope.__version__} on {ssh_env.alias} (ctxscope, platformdirs: " in err
    [venv] = (cache / "ctxscope" / "venvs").iterdir()  # one venv: this version, this wheel, this Python
    assert venv.name.startswith(f"ctxscope-{ctxscope.__version__}-") and str(venv) in "".join(err.split())  # wrapped
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    assert (site / "ctxscope" / "resources" / "presets" / "gpt2.json").is_file()  # the resources travel too
    assert list(site.glob("platformdirs-*.dist-info"))  # the host lacked it: it came along
    assert "site.addsitedir" in (site / "ctxscope-host.pth").read_text()  # torch is the host's own
    [worker] = workers
    assert workers.exes[worker.pid].startswith(str(venv))  # the worker ran from the venv
    run = json.loads((tmp_path / "first.json").read_text())
    assert run["status"] == "complete" and len(run["points"]) == 4
    assert run["environment"]["host"].startswith(ssh_env.alias)
    code, err = cli(capsys, "sweep", *args, "--out", str(tmp_path / "second.json"))
    assert code == 0 and "installing" not in err, err  # found, not sent again
    assert [p.name for p in (cache / "ctxscope" / "venvs").iterdir()] == [venv.name]
    assert json.loads((tmp_path / "second.json").read_text())["status"] == "complete"
    assert exited(workers)


def test_a_host_without_torch_is_told_what_it_lacks(capsys, ssh_env, tmp_path, tiny_config_files) -> None:
    bare = tmp_path / "python"  # the system's Python: no torch, no transformers
    bare.write_text(f"#!/bin/sh\nXDG_CACHE_HOME={tmp_path / 'cache'} exec /usr/bin/env -i /usr/bin/python3 \"$@\"\n")
    bare.chmod(0o755)
    code, err = cli(capsys, "sweep", str(tiny_config_files["llama"]), "--host", ssh_env.alias, "--remote-python",
                    str(bare), "--remote-install", *FAST)
    if code == 0:
        pytest.skip("this machine's /usr/bin/python3 has torch")
    first = err.splitlines()[0]
    assert code == 2 and first.startswith(f"ctxscope: error: cannot install ctxscope on {ssh_env.alias}: "), err
    assert "has no torch" in first and "install" in first and not (tmp_path / "cache").exists()
