"""The telemetry strip builds a sparkline only for a field it shows (each is a plot):
without a GPU, CPU and RSS; once a GPU is picked its fields join, in order, with values."""

from __future__ import annotations

from dataclasses import replace

from ctxscope.gui.telemetry_strip import FIELDS, TelemetryStrip


def test_gpu_sparklines_are_built_when_a_gpu_is_shown(qtbot, monkeypatch) -> None:
    strip = TelemetryStrip()
    qtbot.addWidget(strip)
    strip.timer.stop()
    assert set(strip.sparks) == {"cpu_percent", "rss_bytes"}  # no GPU here: four plots never built
    base = strip.sampler.sample()
    gpu = replace(base, gpu_util_percent=87.0, gpu_memory_used_bytes=3 << 30, power_w=310.0, temperature_c=61.0)
    monkeypatch.setattr(strip.sampler, "sample", lambda: gpu)
    strip.set_device(("GPU-fake",))
    layout = strip.layout()
    order = [layout.itemAt(i).widget() for i in range(layout.count())]
    assert order[:-1] == [strip.sparks[name] for name, *_ in FIELDS] and order[-1] is strip.note
    strip.add_sample(gpu)
    assert strip.sparks["gpu_util_percent"].label.text() == "GPU util: 87 %"
    assert strip.sparks["gpu_memory_used_bytes"].label.text() == "GPU memory: 3.00 GiB"
    assert strip.note.isHidden()
    monkeypatch.setattr(strip.sampler, "sample", lambda: base)
    strip.set_device(())  # back to none: the GPU plots hide, their history goes
    assert strip.sparks["power_w"].isHidden() and not strip.sparks["power_w"].values
