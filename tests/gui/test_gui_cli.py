"""`ctxscope gui MODEL ... --run` opens the window, fills the plots, and stores the run
in the same history as the CLI's."""

from __future__ import annotations

from ctxscope.core.paths import database_path
from ctxscope.store import RunStore


def test_gui_run_from_the_command_line(qtbot, qapp, tiny_config_files, monkeypatch) -> None:
    import ctxscope.gui.app as app_module
    from ctxscope.cli import main

    windows = []

    def fake_run_app(spec, cfg, autorun):
        # The real run_app blocks in app.exec(); build the same window and return.
        windows.append(app_module.build_window(spec, cfg, autorun))
        return 0

    monkeypatch.setattr(app_module, "run_app", fake_run_app)
    code = main(["gui", str(tiny_config_files["llama"]), "--device", "cpu", "--lengths", "16,32", "--min-repeats", "2",
                 "--max-repeats", "2", "--run"])
    assert code == 0
    [window] = windows
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=60_000) as finished:
        pass
    run = finished.args[0]
    window.flush_views()  # the last updates are still a tick each behind the signal
    assert run.status == "complete" and [p.length for p in run.points] == [16, 16, 32, 32]
    assert window.table.rowCount() == 4
    with RunStore(database_path()) as store:
        assert [r.id for r in store.list_runs()] == [run.id]
    # After the sweep the worker probes the devices (torch is already imported by then).
    qtbot.waitUntil(lambda: window.model_panel.device.findData("cpu") >= 0 and not window.runner.busy, timeout=60_000)
    window.close()


def test_window_opens_without_importing_torch_on_the_ui_path(tmp_path) -> None:
    """The start-up path (window built and shown) imports neither torch nor transformers;
    the worker imports them afterwards."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, json; from ctxscope.gui.app import create_app; from ctxscope.gui.main_window import MainWindow;"
            "app = create_app(); w = MainWindow(); w.show(); app.processEvents();"
            "print(json.dumps(['torch' in sys.modules, 'transformers' in sys.modules])); w.close()")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "CTXSCOPE_HOME": str(tmp_path),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [False, False]


def test_gui_refuses_a_list_of_cache_strategies_in_one_line(tiny_config_files, capsys, monkeypatch) -> None:
    """The Sweep panel holds one strategy: a list is refused (not cut to its first) and
    the line says where lists go."""
    import ctxscope.gui.app as app_module
    from ctxscope.cli import main

    monkeypatch.setattr(app_module, "run_app", lambda *a, **k: (_ for _ in ()).throw(AssertionError("app opened")))
    code = main(["gui", str(tiny_config_files["llama"]), "--device", "cpu", "--cache", "dynamic,fp8", "--run"])
    [line] = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "one strategy at a time" in line and "--cache dynamic,fp8" in line
