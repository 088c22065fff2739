"""The Sweep panel's KV-cache strategy (issue 22): the choice reaches the sweep and the
run, an opened run shows the strategy it used, the choice persists, and a strategy the
model cannot use is refused with the CLI's reason before anything loads."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ctxscope.core.measure.kv_cache import STRATEGIES
from ctxscope.core.paths import database_path
from ctxscope.core.serialize import write_run
from ctxscope.store import RunStore
from tests.gui.conftest import set_model, settle
from tests.report.test_reports import make_run

TIMEOUT = 60_000


def choose(panel, strategy: str) -> None:
    panel.cache.combo.setCurrentIndex(panel.cache.combo.findData(strategy))


def test_the_choice_reaches_the_sweep_config(qtbot) -> None:
    from ctxscope.gui.matrix_dialog import CACHE_CHOICES
    from ctxscope.gui.sweep_panel import SweepPanel

    panel = SweepPanel()
    qtbot.addWidget(panel)
    combo = panel.cache.combo
    assert [combo.itemData(i) for i in range(combo.count())] == list(STRATEGIES) == list(CACHE_CHOICES)
    cfg = panel.config()
    assert (cfg.cache, cfg.kv_group_size, cfg.kv_residual) == ("dynamic", None, None)
    assert not panel.cache.group_box.isVisibleTo(panel)
    choose(panel, "fp8")
    cfg = panel.config()  # fp8 takes no group-wise options: the core would refuse them
    assert (cfg.cache, cfg.kv_group_size, cfg.kv_residual) == ("fp8", None, None)
    assert not panel.cache.group_box.isVisibleTo(panel)
    choose(panel, "int2")
    assert panel.cache.group_box.isVisibleTo(panel)
    panel.cache.group_size.setValue(32)
    panel.cache.residual.setValue(16)
    cfg = panel.config()
    assert (cfg.cache, cfg.kv_group_size, cfg.kv_residual) == ("int2", 32, 16)


def test_an_fp8_run_records_and_holds_fp8(window, qtbot, tiny_config_files) -> None:
    set_model(window, str(tiny_config_files["llama"]), "32")
    window.sweep_panel.show_modes(("decode",))
    choose(window.sweep_panel, "fp8")
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=TIMEOUT) as finished:
        window.sweep_panel.run_button.click()
    run = finished.args[0]
    assert run.status == "complete" and run.header.settings.cache == "fp8"
    [point] = run.points
    # Measured through the fp8 cache, not only labelled so: a float32 cache of this Llama
    # holds 32 tokens × 2 layers × (K, V) × 2 KV heads × 16 dims × 4 bytes.
    float32_bytes = 32 * 2 * 2 * 2 * 16 * 4
    assert 0 < point.memory.kv_cache_bytes < float32_bytes / 2
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    with RunStore(database_path()) as store:
        assert store.get_run(run.id).header.settings.cache == "fp8"
    assert window.sweep_panel.cache.strategy() == "fp8"


def _with_cache(run_id: str, cache: str, kv_options: dict | None = None):
    run = make_run(run_id)
    return replace(run, header=replace(run.header, settings=replace(run.header.settings, cache=cache,
                                                                    kv_options=kv_options)))


def test_opening_a_run_shows_its_strategy(window, qtbot, tmp_path) -> None:
    panel = window.sweep_panel
    int4 = _with_cache("20261201-100000-aaaaaa", "int4", {"backend": "quanto", "group_size": 32, "residual": 16})
    path = tmp_path / "int4.json"
    write_run(int4, path)
    window.open_run_file(str(path))
    assert panel.cache.strategy() == "int4" and panel.cache.group_box.isVisibleTo(panel)
    cfg = panel.config()  # Run repeats it, its groups and residual included
    assert (cfg.cache, cfg.kv_group_size, cfg.kv_residual) == ("int4", 32, 16)
    fp8 = _with_cache("20261201-100000-bbbbbb", "fp8")
    dynamic = _with_cache("20261201-100000-cccccc", "dynamic")
    with RunStore(database_path()) as store:
        store.save_run(fp8)
        store.save_run(dynamic)
    for run, shown in ((fp8, "fp8"), (dynamic, "dynamic")):  # and back: the panel is not left on the last
        window.open_stored_run(run.id)
        settle(window, qtbot)
        qtbot.waitUntil(lambda: run.id in window.live.shown, timeout=TIMEOUT)
        assert panel.cache.strategy() == shown and panel.config().cache == shown
        assert not panel.cache.group_box.isVisibleTo(panel)


def test_the_choice_persists(qtbot) -> None:
    from ctxscope.gui.main_window import MainWindow

    first = MainWindow()
    qtbot.addWidget(first)
    choose(first.sweep_panel, "int4")
    first.sweep_panel.cache.group_size.setValue(32)
    first.close()
    second = MainWindow()
    qtbot.addWidget(second)
    assert second.sweep_panel.cache.strategy() == "int4"
    assert second.sweep_panel.config().kv_group_size == 32
    second.close()


def test_the_matrix_dialog_ticks_the_panels_strategy(qtbot) -> None:
    from ctxscope.gui.matrix_dialog import MatrixDialog

    dialog = MatrixDialog(["sdpa"], current_kernel="sdpa", current_dtype="float32", current_cache="fp8")
    qtbot.addWidget(dialog)
    assert dialog.cache_choice() == ("fp8",)


@pytest.mark.parametrize(("model", "cache"), [("mistral", "fp8"), ("llama", "offload")])
def test_a_refused_strategy_says_why_and_starts_nothing(window, qtbot, tiny_config_files, capsys, monkeypatch,
                                                        model, cache) -> None:
    from ctxscope.cli import main
    from ctxscope.core.jobs.matrix import ModelSlot

    source = str(tiny_config_files[model])
    assert main(["sweep", source, "--device", "cpu", "--lengths", "16", "--cache", cache, "--no-store"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    said = line.removeprefix("ctxscope: error: ")

    def no_load(self, spec):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(ModelSlot, "acquire", no_load)
    set_model(window, source, "16")
    choose(window.sweep_panel, cache)
    seen: list[str] = []
    window.runner.modelLoading.connect(lambda _: seen.append("loading"))
    window.runner.sweepStarted.connect(lambda _: seen.append("started"))
    with qtbot.waitSignal(window.runner.jobFailed, timeout=TIMEOUT) as failed:
        window.sweep_panel.run_button.click()
    assert failed.args[0] == said and "\n" not in said  # the CLI's one line, word for word
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    assert seen == [] and window.runner.slot.loaded is None
    assert window.error_box.isVisible() and window.error_banner.text() == said
    assert window.sweep_panel.run_button.isEnabled()
    with RunStore(database_path()) as store:
        assert store.list_runs() == []


def test_overlaid_runs_of_two_strategies_are_told_apart(window, qtbot, tmp_path) -> None:
    runs = [_with_cache("20261201-100000-dddddd", "dynamic"), _with_cache("20261201-100000-eeeeee", "fp8")]
    for i, run in enumerate(runs):
        write_run(run, tmp_path / f"{run.id}.json")
        window.open_run_file(str(tmp_path / f"{run.id}.json"), overlay=i > 0)
    names = [label.text for _, label in window.latency.legend.items]
    assert len(names) == 4 and len(set(names)) == 4, names  # two modes × two runs, four names
    assert any("cache fp8" in name for name in names) and not any("cache dynamic" in n for n in names)


def test_a_compare_matrix_with_one_refused_strategy_stops_before_its_first_cell(window, qtbot, tiny_config_files,
                                                                                 monkeypatch) -> None:
    """The Compare dialog's strategies are checked as `ctxscope sweep --cache dynamic,offload`
    checks them: every cell from the config, before any weights load."""
    from ctxscope.core.jobs.matrix import ModelSlot
    from ctxscope.core.spec import ModelSpec, SweepConfig

    def no_load(self, spec):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(ModelSlot, "acquire", no_load)
    spec = ModelSpec(str(tiny_config_files["llama"]), device="cpu")
    with qtbot.waitSignal(window.runner.jobFailed, timeout=TIMEOUT) as failed:
        assert window.runner.run_matrix(spec, SweepConfig(lengths=(16,)), ("float32",), (None,),
                                        caches=("dynamic", "offload"))
    assert "--cache offload" in failed.args[0] and "CUDA device" in failed.args[0]
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    assert window.runner.slot.loaded is None
