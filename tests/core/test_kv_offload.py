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
