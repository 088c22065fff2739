"""The GPU path's decisions, on CPU: device identity in NVML, the memory split, telemetry
over timed windows only, interference, a lost CUDA context, kernels and dtypes.
Fakes stand in where a GPU would; tests/gpu shows the same on real hardware."""

from __future__ import annotations

import subprocess
import sys
import types
import uuid as uuidlib

import pytest
import torch

from ctxscope.core.machine import interference, nvml
from ctxscope.core.measure.accounting import split_memory
from ctxscope.core.errors import BadInputError
from ctxscope.core.machine.telemetry import TelemetrySample, summarize
from tests.conftest import drain, fast_config

GPU_UUID = "5a1e0c3d-9b7f-4e2a-8c61-0d2f3b4a5c6e"


class FakeNvml(types.ModuleType):
    """A ``pynvml`` whose entry points record their arguments and, like the real
    wrappers (``c_char_p(arg)``), crash on anything that is not bytes."""

    class NVMLError(Exception):
        pass

    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1

    def __init__(self, uuids: dict[str, str]) -> None:
        super().__init__("pynvml")
        self.uuids = uuids  # "GPU-…" → name
        self.calls: list[tuple[str, object]] = []

    def _arg(self, name: str, value: object) -> None:
        self.calls.append((name, value))
        if not isinstance(value, bytes):
            raise AssertionError(f"{name} got {type(value).__name__}: NVML would dereference it as a pointer")

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetHandleByUUID(self, value: object) -> str:
        self._arg("nvmlDeviceGetHandleByUUID", value)
        text = value.decode()
        if text not in self.uuids:
            raise self.NVMLError("not found")
        return text

    def nvmlDeviceGetHandleByPciBusId(self, value: object) -> str:
        self._arg("nvmlDeviceGetHandleByPciBusId", value)
        raise self.NVMLError("not found")

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        self.calls.append(("nvmlDeviceGetHandleByIndex", index))
        return "wrong-gpu"

    def nvmlDeviceGetMemoryInfo(self, handle: str):
        return types.SimpleNamespace(free=60 << 30, used=20 << 30, total=80 << 30)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: str):
        return [types.SimpleNamespace(pid=12345, usedGpuMemory=1 << 30)]

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:
        return 1_000_000

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: str) -> int:
        return 0x40 | 0x1  # hardware thermal slowdown, plus idle (not a slowdown)

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"570.00"


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    """torch sees one CUDA device whose properties carry an *int* PCI bus id (as torch's
    do) and a ``_CUuuid``-like uuid; NVML knows it by ``GPU-<uuid>``."""
    fake = FakeNvml({f"GPU-{GPU_UUID}": "NVIDIA H100 80GB HBM3"})
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    nvml.reset_for_tests()

    class CUuuid:  # torch's private type: str() is the bare UUID
        def __str__(self) -> str:
            return GPU_UUID.upper()

    props = types.SimpleNamespace(uuid=CUuuid(), pci_bus_id=27, name="NVIDIA H100 80GB HBM3", total_memory=80 << 30,
                                  major=9, minor=0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index=0: props)
    yield fake
    nvml.reset_for_tests()


def test_gpus_are_found_by_uuid_with_bytes_only(fake_gpu: FakeNvml) -> None:
    uuid = nvml.torch_uuid(0)
    assert uuid == GPU_UUID  # canonical lower case, no prefix
    for _ in range(3):
        assert nvml.handle(uuid) == f"GPU-{GPU_UUID}"
    assert nvml.memory_info(uuid) == (60 << 30, 80 << 30)
    lookups = [c for c in fake_gpu.calls if c[0].startswith("nvmlDeviceGetHandle")]
    assert lookups == [("nvmlDeviceGetHandleByUUID", f"GPU-{GPU_UUID}".encode())]  # cached, never by index or bus
    assert all(isinstance(v, bytes) for name, v in fake_gpu.calls if name != "nvmlDeviceGetHandleByIndex")


def test_env_reads_each_gpu_by_its_uuid(fake_gpu: FakeNvml, monkeypatch: pytest.MonkeyPatch) -> None:
    # `ctxscope env` passed the device index to NVML's UUID lookup: never a reading.
    from ctxscope.cli.info_cmd import _devices

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index=0: (60 << 30, 80 << 30))
    gpu = next(d for d in _devices() if d["device"] == "cuda:0")
    assert gpu["nvml_used_bytes"] == 20 << 30 and gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert ("nvmlDeviceGetHandleByUUID", f"GPU-{GPU_UUID}".encode()) in fake_gpu.calls


def test_mig_instances_and_unknown_gpus(fake_gpu: FakeNvml) -> None:
    mig = str(uuidlib.uuid4())
    fake_gpu.uuids[f"MIG-{mig}"] = "MIG 1g.10gb"
    assert nvml.handle(mig) == f"MIG-{mig}"
    assert nvml.handle(str(uuidlib.uuid4())) is None  # no index fallback onto another GPU
    assert nvml.normalize_uuid("GPU-" + GPU_UUID.upper()) == GPU_UUID and nvml.normalize_uuid("27") is None


def test_telemetry_and_interference_read_the_model_gpus(fake_gpu: FakeNvml) -> None:
    from ctxscope.core.machine.telemetry import TelemetrySampler

    sample = TelemetrySampler(hz=0, uuids=(GPU_UUID,)).sample()
    assert sample.gpu_memory_total_bytes == 80 << 30 and sample.other_processes == 1  # pid 12345 is not us
    assert sample.slowdown_mask == 0x40 and sample.process_memory_bytes == 0
    reading = interference.read((GPU_UUID,))
    assert reading.energy_mj == 1_000_000 and reading.other_gpu_pids == frozenset({12345})
    problem = interference.isolation_problem((GPU_UUID,), cpu=False)
    assert problem is not None and "1 other process hold the GPU (pid 12345)" in problem


def test_no_torch_no_gpu_and_no_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app samples on its UI thread before torch loads: no UUID, no NVML call."""
    monkeypatch.delitem(sys.modules, "torch")
    assert nvml.torch_uuid(0) is None


@pytest.mark.parametrize(("facts", "split"), [
    # A prefill on a GPU: 1 GiB weights, 10 MiB of inputs and cuBLAS workspace held before,
    # the pass builds 64 MiB of KV and peaks 200 MiB above what was there.
    (dict(weights=1024, allocated_before=1034, peak=1234, kv_before=0, kv_after=64), (1024, 64, 136, 10, ())),
    # A decode step at depth L: the cache is there before; the step adds a token.
    (dict(weights=1024, allocated_before=1034 + 64, peak=1034 + 64 + 70, kv_before=64, kv_after=65), (1024, 65, 69, 10, ())),
])
def test_memory_split(facts: dict, split: tuple) -> None:
    got = split_memory(**facts)
    assert (got.weights, got.kv_cache, got.activations, got.other, got.notes) == split
    assert got.weights + got.kv_cache + got.activations + got.other == facts["peak"]


def test_memory_split_flags_what_does_not_add_up() -> None:
    # Half the weights offloaded to the CPU: allocated-before is below weights + KV.
    offload = split_memory(weights=1000, allocated_before=600, peak=700, kv_before=0, kv_after=50)
    assert offload.other == 0 and offload.activations == 50 and "not on the measured device" in offload.notes[0]
    # A CPU pass whose pages were already mapped: the RSS peak did not move.
    reused = split_memory(weights=100, allocated_before=900, peak=900, kv_before=0, kv_after=40)
    assert reused.activations == 0 and "below what was allocated before" in reused.notes[0]
    inconsistent = split_memory(weights=1, allocated_before=2, peak=10, kv_before=0, kv_after=0, reserved_peak=5)
    assert any("reserved" in n for n in inconsistent.notes)


def _reading(t: float, busy: float, own: float, energy: int | None = None) -> interference.Reading:
    return interference.Reading(t=t, cpu_busy_s=busy, self_cpu_s=own, energy_mj=energy, other_gpu_pids=frozenset(),
                                slowdown_mask=0)


def test_telemetry_describes_only_the_timed_window() -> None:
    window = interference.Window(_reading(10.0, 100.0, 50.0, 5_000), _reading(12.0, 104.0, 51.0, 605_000))
    samples = [TelemetrySample(t=t, cpu_percent=c, rss_bytes=1, gpu_util_percent=u)
               for t, c, u in ((9.0, 5.0, 0.0), (10.5, 90.0, 97.0), (11.5, 80.0, 99.0), (12.5, 3.0, 1.0))]
    s = summarize(samples, window)
    assert s["samples"] == 2 and s["gpu_util_mean_percent"] == 98.0 and s["cpu_percent_mean"] == 85.0
    assert s["window_s"] == 2.0
    assert s["cpu_other_cores"] == pytest.approx(1.5)  # (4 busy − 1 own) CPU-seconds over 2 s
    assert s["energy_j"] == pytest.approx(600.0)
    short = interference.Window(_reading(0.0, 0, 0, 0), _reading(0.5, 0, 0, 100_000))
    assert short.energy_j() is None  # under a second the counter means nothing
    assert interference.contention(s) == "other processes kept 1.5 CPU cores busy while timed"
    assert interference.contention({"gpu_slowdown_mask": 0x4}) is None  # the power cap is our own load
    assert "thermal (hardware)" in interference.contention({"gpu_slowdown_mask": 0x44})


@pytest.fixture
def busy_neighbour():
    """A real process spinning on a core (what a colleague's job does to a shared box)."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_busy_neighbour_is_flagged_and_strict_isolation_refuses(loaded_llama, busy_neighbour) -> None:
    from ctxscope.core.jobs.sweep import run_sweep

    # About a second of timed calls: long enough for the kernel's 10 ms CPU ticks.
    cfg = fast_config((256,), modes=("prefill",), min_repeats=5, max_repeats=100_000, budget_s=1.0,
                      target_rel_iqr=0.0)
    _, run = drain(run_sweep(loaded_llama, cfg))
    [point] = run.points
    assert point.telemetry["cpu_other_cores"] >= interference.CPU_OTHER_CORES, point.telemetry
    assert point.contention and "CPU cores busy" in point.contention
    with pytest.raises(BadInputError, match="isolation strict: other processes keep"):
        next(run_sweep(loaded_llama, fast_config((64,), isolation="strict")))


def test_a_lost_cuda_context_ends_the_sweep_keeping_the_points(loaded_llama, monkeypatch) -> None:
    """A device-side assert poisons the process's CUDA context: the sweep stops at once
    with one line, keeps what it measured and never raises from its cleanup."""
    from ctxscope.core.jobs.sweep import run_sweep

    model = loaded_llama.model
    original = model.forward

    def forward(*args, **kwargs):
        if kwargs["input_ids"].shape[1] == 32:
            raise RuntimeError("CUDA error: device-side assert triggered\nCompile with TORCH_USE_CUDA_DSA")
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "forward", forward)
    _, run = drain(run_sweep(loaded_llama, fast_config((16, 32, 64), modes=("prefill",))))
    assert [(p.length, p.status) for p in run.points] == [(16, "ok"), (32, "error")]
    assert run.status == "failed" and run.error.startswith("the CUDA context is no longer usable; restart ctxscope")


def test_cleanup_never_raises(monkeypatch) -> None:
    from ctxscope.core.measure.memory import release

    def broken(*args):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(torch.cuda, "synchronize", broken)
    assert "device-side assert" in release(torch.device("cuda", 0))


def test_timing_and_peaks_cover_only_the_model_gpus(monkeypatch) -> None:
    from ctxscope.core.measure.timing import CallTimer

    synced: list[object] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "synchronize", synced.append)
    timer = CallTimer(torch.device("cuda", 1), devices=(torch.device("cuda", 1), torch.device("cuda", 3)))
    assert timer.name == "perf_counter+sync"
    timer.sync()
    assert synced == [torch.device("cuda", 1), torch.device("cuda", 3)]  # not cuda:0 or cuda:2


def test_flash_attention_in_float32_is_refused_before_loading(tiny_config_files) -> None:
    from ctxscope.core.model.loading import check_source, load_model
    from ctxscope.core.spec import ModelSpec

    spec = ModelSpec(str(tiny_config_files["llama"]), device="cpu", dtype="float32",
                     attn_implementation="flash_attention_2")
    with pytest.raises(BadInputError, match="only in float16 or bfloat16"):
        check_source(spec)
    with pytest.raises(BadInputError, match="only in float16 or bfloat16"):
        load_model(spec)


def test_attention_accumulates_on_each_layers_device() -> None:
    """Under a device map the input sits on one GPU and later layers on others: each
    layer's sums must live where its probabilities are (here: input 'meta', layer CPU)."""
    from ctxscope.core.attention.collect import _Accumulator
    from ctxscope.core.attention.config import CaptureConfig

    acc = _Accumulator(CaptureConfig(tiles=4), {0}, 8, 2, torch.device("meta"))
    probs = torch.full((1, 2, 8, 8), 1 / 8)
    acc.add(0, probs, torch.full((1, 2, 8), 8), 0, causal=False)
    [layer] = acc.result(8)
    assert layer.maps.shape == (2, 4, 4) and abs(float(layer.maps.sum()) - 2 * 4) < 1e-5
