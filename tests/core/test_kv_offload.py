"""``--cache offload``'s figures with fake layers (the strategy is GPU only: never run here).
The meter counts what a layer's prefetch / offload really moved, in each direction, and
leaves the layer as it was; the device split counts storage per device."""

from __future__ import annotations

import torch

from ctxscope.core.measure.offload import TrafficMeter, bytes_by_device


class FakeTensor:
    """A tensor's size and device, nothing else (a stand-in for a CUDA tensor)."""

    def __init__(self, n: int, device: str) -> None:
        self.n, self.device = n, torch.device(device) if device != "cuda" else _Dev("cuda")

    def numel(self) -> int:
        return self.n

    def element_size(self) -> int:
        return 2

    def to(self, device: str) -> FakeTensor:
        return FakeTensor(self.n, device)


class _Dev:
    def __init__(self, kind: str) -> None:
        self.type = kind


class FakeLayer:
    """Offloads and prefetches as transformers' DynamicLayer does: rebinding keys / values."""

    def __init__(self, n: int) -> None:
        self.keys, self.values = FakeTensor(n, "cpu"), FakeTensor(n, "cpu")

    def prefetch(self) -> None:
        self.keys, self.values = self.keys.to("cuda"), self.values.to("cuda")

    def offload(self) -> None:
        self.keys, self.values = self.keys.to("cpu"), self.values.to("cpu")


class FakeCache:
    def __init__(self, *sizes: int) -> None:
        self.layers = [FakeLayer(n) for n in sizes]


def test_the_meter_counts_each_direction_and_unwraps() -> None:
    cache = FakeCache(100, 300)
    with TrafficMeter(cache) as meter:
        for layer in cache.layers:  # one step: every layer in, then out again
            layer.prefetch()
            layer.prefetch()  # already there: nothing moves
            layer.offload()
    assert meter.traffic.to_device == 2 * 2 * (100 + 300)  # keys + values, 2 bytes each
    assert meter.traffic.to_host == meter.traffic.to_device and meter.traffic.total == 3200
    assert "prefetch" not in vars(cache.layers[0])  # the class's methods again
    cache.layers[0].prefetch()
    assert meter.traffic.to_device == 1600  # no longer counted


def test_bytes_by_device_counts_each_storage_once() -> None:
    class Layer:
        pass

    a, b = Layer(), Layer()
    base = torch.zeros(10, 8)
    a.keys, a.values = base, base[:5]  # a view of the same storage
    b.keys, b.values = torch.zeros(4, 8), torch.zeros(4, 8)

    class Cache:
        layers = [a, b]

    assert bytes_by_device(Cache()) == {"cpu": 10 * 8 * 4 + 2 * 4 * 8 * 4}


def test_an_offload_point_records_the_host_share_and_one_steps_traffic(loaded_llama, monkeypatch) -> None:
    """The measurer's offload path on a CPU, where transformers' offloaded cache cannot run
    (it needs CUDA streams): a plain dynamic cache stands in for it, "half of it in host
    memory" for the device split, and a meter that reports what it was given. What is
    checked is the measurer's own work: the split subtracts only the device share, the
    point gets the whole cache back, the host share, and the traffic of exactly one extra
    untimed step taken at depth L, after which the cache is back at depth L."""
    from ctxscope.core.measure import measurer as m
    from ctxscope.core.measure.cache_storage import cache_bytes
    from ctxscope.core.measure.offload import Traffic
    from ctxscope.core.measure.rollback import attention_depth
    from ctxscope.core.serialize import point_from_dict, point_to_dict
    from tests.conftest import fast_config

    real_make = m.make_cache
    monkeypatch.setattr(m, "make_cache", lambda strategy, config, **kw: real_make("dynamic", config, **kw))
    monkeypatch.setattr(m, "host_bytes", lambda cache: cache_bytes(cache) // 2)
    steps: list[int | None] = []

    def metered(cache, step):
        steps.append(attention_depth(cache))
        out = step()  # the real step: the rollback after it must bring the depth back
        del out
        return Traffic(to_device=1000, to_host=1004)

    monkeypatch.setattr(m, "metered_step", metered)
    length = 48
    dynamic = m.Measurer(loaded_llama, fast_config((length,))).measure("decode", length)
    point = m.Measurer(loaded_llama, fast_config((length,), cache="offload")).measure("decode", length)
    assert steps == [length]  # one metered step, at depth L (the measurer checks the depth after it)
    mem, base = point.memory, dynamic.memory
    assert mem.kv_cache_bytes == base.kv_cache_bytes  # the whole cache, as the default cache holds
    assert mem.kv_host_bytes == base.kv_cache_bytes // 2 and mem.kv_traffic_bytes == 2004
    assert "in host memory" in mem.accounting_note
    assert base.kv_host_bytes is None and base.kv_traffic_bytes is None
    back = point_from_dict(point_to_dict(point))  # the two figures survive the run file
    assert (back.memory.kv_host_bytes, back.memory.kv_traffic_bytes) == (mem.kv_host_bytes, 2004)
    prefill = m.Measurer(loaded_llama, fast_config((length,), cache="offload")).measure("prefill", length)
    assert prefill.memory.kv_host_bytes == prefill.memory.kv_cache_bytes // 2 and prefill.memory.kv_traffic_bytes is None
