"""The app beyond this machine: Run on user@host (a real sshd on 127.0.0.1) fills the
same plots, table and history as a local sweep; Compare on a Ray cluster."""

from __future__ import annotations

import sys

import pytest

from ctxscope.core.paths import database_path
from ctxscope.remote.ssh import RemoteTarget
from ctxscope.store import RunStore
from tests.gui.conftest import set_model, settle

TIMEOUT = 120_000


def test_run_on_says_where_and_routes_the_runner(window) -> None:
    panel = window.model_panel
    assert panel.target() is None and window.runner.remote is None and not panel.remote_note.isVisible()
    panel.set_target("me@gpu-box", "/opt/venv/bin/python")
    assert window.runner.remote == RemoteTarget("me@gpu-box", "/opt/venv/bin/python")
    assert panel.remote_note.isVisible() and "me@gpu-box" in panel.remote_note.text()
    assert not any(b.isEnabled() for b in panel.browse_buttons)  # local file pickers make no sense there
    panel.set_target(None)
    assert window.runner.remote is None and all(b.isEnabled() for b in panel.browse_buttons)


def test_a_sweep_on_a_remote_host_fills_the_window(window, qtbot, sshd, tiny_config_files, monkeypatch) -> None:
    monkeypatch.setenv("CTXSCOPE_SSH", sshd.ssh_command)
    set_model(window, str(tiny_config_files["llama"]), "16,32")
    window.model_panel.set_target(sshd.alias, sys.executable)
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=TIMEOUT) as finished:
        window.sweep_panel.run_button.click()
    run = finished.args[0]
    window.flush_views()  # the last updates are still a tick each behind the signal
    assert run.status == "complete" and len(run.points) == 4
    assert run.header.environment.host.startswith(sshd.alias)
    assert window.table.rowCount() == 4 and run.id in window.live.shown
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    with RunStore(database_path()) as store:
        assert store.get_run(run.id).header.environment.host == run.header.environment.host
    settle(window, qtbot)
    assert window.history.table.rowCount() == 1
    with qtbot.waitSignal(window.runner.modelLoaded, timeout=TIMEOUT) as loaded:  # Load: checked over there
        window.model_panel.load_button.click()
    assert loaded.args[0].info.architecture == "LlamaForCausalLM" and loaded.args[0].gpu_uuids == ()
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    with qtbot.waitSignal(window.runner.maxContextFound, timeout=TIMEOUT) as found:
        assert window.find_max_context("prefill", 4 << 30, 256, ask=False)
    assert found.args[0].largest_fit == 512 and found.args[0].trials
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    window.model_panel.set_target("-oProxyCommand=x")  # never run as an ssh option; one line in the red bar
    with qtbot.waitSignal(window.runner.jobFailed, timeout=TIMEOUT) as failed:
        window.sweep_panel.run_button.click()
    assert "give a destination" in failed.args[0]


def test_compare_on_a_ray_cluster(window, qtbot, tiny_config_files) -> None:
    ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "ray[client]>=2.60")')
    import logging

    from ctxscope.remote import ray_cluster

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        set_model(window, str(tiny_config_files["llama"]), "16,32")
        notes: list[str] = []
        window.runner.remoteNote.connect(notes.append)
        with qtbot.waitSignal(window.runner.matrixFinished, timeout=TIMEOUT) as done:
            assert window.matrix.run(("float32",), ("sdpa", "eager"), cluster="auto")
        assert len(done.args[0]) == 2
        qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
        assert any("Ray cluster" in n and "no GPU" in n for n in notes)  # CPU-only: said where the user looks
        settle(window, qtbot)
        settle(window, qtbot)
        assert sorted(window.compare.checked_ids()) == sorted(done.args[0])
        with RunStore(database_path()) as store:
            hosts = {store.get_run(i).header.environment.host for i in done.args[0]}
        assert all(h.startswith("ray node ") for h in hosts)
    finally:
        ray.shutdown()
        ray_cluster._connected = None


def test_the_compare_dialog_offers_the_cluster(qtbot) -> None:
    from ctxscope.gui.matrix_dialog import MatrixDialog

    dialog = MatrixDialog(["sdpa", "eager"], current_kernel=None, current_dtype="float32")
    qtbot.addWidget(dialog)
    assert dialog.cluster() is None
    if dialog.on_cluster.isEnabled():  # Ray installed
        dialog.on_cluster.setChecked(True)
        dialog.cluster_address.setText("ray://head:10001")
        assert dialog.cluster() == "ray://head:10001"
