"""Measure a device's peaks (``ctxscope env --probe``): the best of several large square
matmuls per dtype and a large device-to-device copy. Kept apart from the data-sheet table
(:mod:`ctxscope.core.machine.hardware`), which reports use without torch."""

from __future__ import annotations

from datetime import datetime, timezone

from collections.abc import Callable

from ctxscope.core.machine.hardware import Peak


def probe(device: str = "cpu", dtypes: tuple[str, ...] | None = None, seconds: float = 1.0) -> Peak:
    """Measure the device: the best of several large square matmuls per dtype (FLOP/s)
    and a large device-to-device copy (bytes read + written per second)."""
    import time

    import torch

    from ctxscope.core.machine.environment import cpu_name
    from ctxscope.core.measure.timing import CallTimer

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    dtypes = dtypes or (("bfloat16", "float16", "float32") if cuda else ("float32", "bfloat16"))
    timer = CallTimer(dev)
    n = 8192 if cuda else 1024

    def best(fn: Callable[[], object], budget: float) -> float:
        fn()  # warm-up (kernel selection, page faults)
        samples: list[float] = []
        start = time.perf_counter()
        while len(samples) < 3 or (time.perf_counter() - start < budget and len(samples) < 50):
            samples.append(timer.time(fn)[0] / 1e3)
        return min(samples)  # peak: the fastest repetition

    def matmul_rate(dtype: torch.dtype) -> float:
        # The largest size up to n whose warm-up and three repetitions fit the budget: a
        # dtype this CPU emulates (bfloat16 without AVX512-BF16) took 2.5 s per 1024² matmul,
        # and its four made a 1 s probe 10 s. Each doubling costs 8×.
        size = min(256, n)
        while True:
            a = torch.randn(size, size, device=dev).to(dtype)
            b = torch.randn(size, size, device=dev).to(dtype)
            torch.mm(a, b)  # untimed: the first call at a size (cuBLAS set-up, a thread pool) is no rate
            once = timer.time(lambda: torch.mm(a, b))[0] / 1e3
            if size >= n or 8 * once > seconds / 8:
                break
            size *= 2
        return 2 * size**3 / best(lambda: torch.mm(a, b), seconds / 2)

    def copy_rate(size: int) -> float:
        src = torch.empty(size, dtype=torch.uint8, device=dev)
        dst = torch.empty_like(src)
        return 2 * size / best(lambda: dst.copy_(src), seconds / 2)  # each byte read and written

    flops = {name: matmul_rate(getattr(torch, name)) for name in dtypes}
    bandwidth = copy_rate((1 << 30) if cuda else (256 << 20))
    if cuda:
        torch.cuda.empty_cache()
    name = torch.cuda.get_device_name(dev) if cuda else cpu_name()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    return Peak(name=name, flops=flops, bytes_per_s=bandwidth, source=f"probe {stamp} ({device})")
