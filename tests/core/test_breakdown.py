"""The breakdown: attribution by innermost range, modules' roles, a model whose
components take known times, the crossover, and the run file's block."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import torch

from ctxscope.core.breakdown import COMPONENTS
from ctxscope.core.breakdown.attribute import attribute
from ctxscope.core.breakdown.crossover import measured_crossing
from ctxscope.core.breakdown.roles import ROOT, classify, range_name
from ctxscope.core.errors import RunFileError
from tests.conftest import drain, fast_config


@dataclass
class FakeEvent:
    name: str
    self_cpu_time_total: float
    cpu_children: list[Any] = field(default_factory=list)
    self_device_time_total: float = 0.0
    cpu_parent: Any = None


def tree(name: str, self_us: float, *children: FakeEvent) -> FakeEvent:
    event = FakeEvent(name, self_us, list(children))
    for child in children:
        child.cpu_parent = event
    return event


def test_each_op_goes_to_its_innermost_range_once() -> None:
    # forward > attention module glue (no range) > [kernel range > matmul], norm range > op
    kernel = tree(range_name("attention"), 1.0, tree("aten::matmul", 30.0))
    norm = tree(range_name("norms"), 2.0, tree("aten::mul", 5.0))
    proj = tree(range_name("projections"), 1.0, tree("aten::linear", 10.0, tree("aten::addmm", 40.0)))
    root = tree(ROOT, 3.0, tree("aten::cat", 7.0), kernel, norm, proj)
    events = [root, *root.cpu_children]
    (split,) = attribute(events)
    assert split["attention"] == 31.0 and split["norms"] == 7.0 and split["projections"] == 51.0
    assert split["other"] == 10.0  # the root's own time and the cache's cat
    assert sum(split.values()) == 3 + 7 + 31 + 7 + 51  # the root's inclusive time, nothing twice
    assert set(split) == set(COMPONENTS)


def test_roles_of_a_llama(loaded_llama) -> None:
    roles = classify(loaded_llama.model)
    counts = {r: list(roles.values()).count(r) for r in set(roles.values())}
    layers = loaded_llama.info.num_layers
    assert counts == {"projections": 4 * layers, "mlp": layers, "norms": 2 * layers + 1, "embeddings_head": 2}
    names = {n for n, m in loaded_llama.model.named_modules() if roles.get(m) == "projections"}
    assert names == {f"model.layers.{i}.self_attn.{p}_proj" for i in range(layers) for p in "qkvo"}


def test_roles_of_recurrent_mixers() -> None:
    from tests.core.families import family_config
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(family_config("lfm2"))
    roles = classify(model)
    mixers = [n for n, m in model.named_modules() if roles.get(m) == "recurrent"]
    assert len(mixers) == 3  # three conv layers; the fourth attends
    projections = [n for n, m in model.named_modules() if roles.get(m) == "projections"]
    assert len(projections) == 4 and all(".self_attn." in n for n in projections)


def _identity_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        attention_mask: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
    groups = getattr(module, "num_key_value_groups", 1)
    return value.repeat_interleave(groups, dim=1).transpose(1, 2).contiguous(), None


def _patch_kernel(monkeypatch: pytest.MonkeyPatch, loaded: Any, fn: Any) -> None:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    impl = loaded.model.config._attn_implementation
    if impl != "eager":
        monkeypatch.setitem(ALL_ATTENTION_FUNCTIONS._local_mapping, impl, fn)
    monkeypatch.setattr(sys.modules[type(loaded.model.model.layers[0].self_attn).__module__],
                        "eager_attention_forward", fn)


def _profile(loaded: Any, mode: str = "prefill", length: int = 32) -> dict[str, Any]:
    from ctxscope.core.breakdown.profiled import profile_point
    from ctxscope.core.measure.measurer import Measurer

    measurer = Measurer(loaded, fast_config((length,)))
    return dict(profile_point(measurer, mode, length, timed_median_ms=1.0))


@pytest.fixture
def one_thread():
    """One intra-op thread while profiling: with two, an op waits at the barrier for a
    sibling the OS descheduled (tens of ms on shared cores), and that wait lands in
    whichever component it hits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_known_times_land_in_their_components(loaded_llama, monkeypatch: pytest.MonkeyPatch, one_thread) -> None:
    """Attention kernels that take 15 ms and MLPs that take 8 ms: the breakdown finds
    them there, and an identity kernel takes next to nothing."""
    def slow_attention(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
        time.sleep(0.015)
        return _identity_attention(*args, **kwargs)

    layers = loaded_llama.info.num_layers
    for layer in loaded_llama.model.model.layers:
        slow_mlp = (lambda mlp: lambda x: (time.sleep(0.008), mlp(x))[1])(layer.mlp.forward)
        monkeypatch.setattr(layer.mlp, "forward", slow_mlp)
    _patch_kernel(monkeypatch, loaded_llama, slow_attention)
    block = _profile(loaded_llama)
    parts = block["components_ms"]
    # Lower bounds only: a sleep on a busy machine can take longer, never shorter.
    assert parts["attention"] >= 15 * layers and parts["mlp"] >= 8 * layers
    # ...and the sleeps landed nowhere else (the rest of this model is well under 15 ms a call).
    assert max(parts["projections"], parts["norms"], parts["embeddings_head"], parts["other"]) < 15 * layers
    assert abs(block["attributed_ms"] - block["total_ms"]) <= 0.05 * block["total_ms"]

    _patch_kernel(monkeypatch, loaded_llama, _identity_attention)
    identity = _profile(loaded_llama)["components_ms"]
    assert identity["attention"] < 15  # a copy, not 15 ms a layer
    assert identity["mlp"] >= 8 * layers  # the MLPs did not change


def test_real_attention_share_grows_with_length(loaded_llama, one_thread) -> None:
    short, long = _profile(loaded_llama, length=16), _profile(loaded_llama, length=500)
    decode = _profile(loaded_llama, mode="decode", length=64)
    attention = [b["components_ms"]["attention"] for b in (short, long)]
    assert attention[1] > 3 * attention[0] > 0  # ~1000× the query–key pairs; at 16 a kernel call is mostly overhead
    share = [b["components_ms"]["attention"] / b["attributed_ms"] for b in (short, long)]
    assert share[1] > share[0]
    assert decode["calls"] == 5 and decode["components_ms"]["attention"] > 0


def test_measured_crossing_interpolates_in_log_space() -> None:
    length, below, above = measured_crossing([128, 512, 2048], [0.25, 0.5, 2.0])  # type: ignore[misc]
    assert (below, above) == (512, 2048) and length == pytest.approx(1024.0)
    assert measured_crossing([128, 512], [0.2, 0.5]) is None
    from ctxscope.core.breakdown.crossover import crossings

    assert [c[3] for c in crossings([128, 256, 512, 1024], [0.5, 2.0, 0.5, 2.0])] == [True, False, True]


def test_sweep_records_and_reloads_the_block(loaded_llama, tmp_path) -> None:
    from ctxscope.core.serialize import dumps_run, load_run, run_from_dict
    from ctxscope.core.jobs.sweep import run_sweep

    _, run = drain(run_sweep(loaded_llama, fast_config((16, 64), breakdown=True)))
    assert run.header.settings.breakdown
    assert run.header.analytic["breakdown"]["prefill_length"] > 0
    for point in run.ok_points():
        b = point.breakdown
        assert b is not None and b["error"] is None and set(b["components_ms"]) == set(COMPONENTS)
        assert b["overhead"] == pytest.approx(b["total_ms"] / point.latency_ms.median)
    text = dumps_run(run)
    again = run_from_dict(json.loads(text))
    assert [p.breakdown for p in again.points] == [p.breakdown for p in run.points]
    data = json.loads(text)
    data["points"][0]["breakdown"]["components_ms"]["mlp"] = "fast"
    with pytest.raises(RunFileError, match=r"points\[0\].breakdown.components_ms.mlp: expected a number"):
        run_from_dict(data)
    path = tmp_path / "run.json"
    path.write_text(text, encoding="utf-8")
    assert load_run(path).points[0].breakdown == run.points[0].breakdown


def test_a_failed_profile_keeps_the_timed_point(loaded_llama, monkeypatch: pytest.MonkeyPatch) -> None:
    from ctxscope.core.breakdown import profiled
    from ctxscope.core.jobs.sweep import run_sweep

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("profiler unavailable")
    monkeypatch.setattr(profiled, "profile_point", boom)
    _, run = drain(run_sweep(loaded_llama, fast_config((16,), modes=("prefill",), breakdown=True)))
    (point,) = run.points
    assert point.status == "ok" and point.latency_ms is not None
    assert point.breakdown == {"error": "RuntimeError: profiler unavailable"}
    assert replace(point, breakdown=None).breakdown is None


@pytest.mark.parametrize("family", ["mamba2", "qwen3_5_text"])
def test_state_space_and_hybrid_families(family: str, tmp_path, one_thread) -> None:
    """An SSM has no attention time and no analytic crossover; a linear + full attention
    hybrid has recurrent mixers beside its attention, and an analytic crossover."""
    from ctxscope.core.model.loading import load_model
    from ctxscope.core.spec import ModelSpec
    from ctxscope.core.jobs.sweep import run_sweep
    from tests.core.families import write_family

    loaded = load_model(ModelSpec(str(write_family(family, tmp_path)), device="cpu"))
    _, run = drain(run_sweep(loaded, fast_config((32,), modes=("prefill",), breakdown=True)))
    (point,) = run.points
    parts = point.breakdown["components_ms"]
    assert parts["recurrent"] > 0
    predicted = run.header.analytic["breakdown"]["prefill_length"]
    if family == "mamba2":
        assert parts["attention"] == 0 and parts["projections"] == 0 and predicted is None
    else:
        assert parts["attention"] > 0 and predicted is not None


def test_the_block_and_the_setting_cross_the_wire(loaded_llama) -> None:
    """What a remote worker sends back (--host, --cluster) is the same point and job."""
    from ctxscope.core.events import PointResult, SweepStarted
    from ctxscope.core.jobs.job import config_from_dict, config_to_dict
    from ctxscope.core.jobs.sweep import run_sweep
    from ctxscope.core.wire import dumps, event_from_dict, event_to_dict, loads

    cfg = fast_config((16,), modes=("prefill",), breakdown=True)
    assert config_from_dict(json.loads(json.dumps(config_to_dict(cfg)))).breakdown
    events, run = drain(run_sweep(loaded_llama, cfg))
    for event in events:
        if isinstance(event, (PointResult, SweepStarted)):
            again = event_from_dict(loads(dumps(event_to_dict(event))))
            assert again == event
    assert run.points[0].breakdown and run.header.analytic["breakdown"]
