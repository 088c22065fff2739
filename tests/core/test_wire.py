"""The wire: every event, job and answer survives JSON lines unchanged; anything
malformed is refused with one line; attention maps are bounded before they inflate."""

from __future__ import annotations

import base64
import json
import math
import threading
import zlib
from dataclasses import asdict

import numpy as np
import pytest

from ctxscope.core.attention import CaptureConfig
from ctxscope.core.events import AttentionResult
from ctxscope.core.predict.guard import MemoryCheck
from ctxscope.core.jobs.job import Job, MaxContextRequest, job_from_dict, job_lines, job_to_dict
from ctxscope.core.jobs.matrix import CellFailed, CellFinished, ModelLoading, ModelReady, ModelSlot, run_matrix
from ctxscope.core.maxctx.search import MaxContext, Trial
from ctxscope.core.quality.config import QualityConfig
from ctxscope.core.quality.records import LossPoint, NeedleTrial, QualityPoint
from ctxscope.core.spec import ModelSpec
from ctxscope.core.machine.telemetry import TelemetrySample
from ctxscope.core.wire import (WireError, event_from_dict, event_lines, event_to_dict, loads, maxctx_from_dict,
                                maxctx_to_dict, memory_check_from_dict)
from ctxscope.core.wire_arrays import CHUNK_BYTES, ArrayAssembler
from ctxscope.remote.relay import Relay, RemoteError
from tests.conftest import drain, fast_config


def through_wire(event: object) -> object:
    """Encode ``event`` as the worker does and decode it as the local side does."""
    arrays = ArrayAssembler()
    decoded = None
    for line in event_lines(event):
        message = loads(line.encode("utf-8"))
        if message["type"] == "array":
            arrays.add(message)
        else:
            decoded = event_from_dict(message, arrays)
    return decoded


def same_attention(a: AttentionResult, b: AttentionResult) -> None:
    assert (a.length, a.status, a.tokens, a.entries, a.error) == (b.length, b.status, b.tokens, b.entries, b.error)
    assert (a.capture is None) == (b.capture is None)
    if a.capture is None:
        return
    assert (a.capture.length, a.capture.span, a.capture.random_weights) == \
           (b.capture.length, b.capture.span, b.capture.random_weights)
    for la, lb in zip(a.capture.layers, b.capture.layers, strict=True):
        assert (la.length, la.layer) == (lb.length, lb.layer)
        np.testing.assert_array_equal(la.maps, lb.maps)
        np.testing.assert_array_equal(la.tile_edges, lb.tile_edges)
        assert la.profiles.keys() == lb.profiles.keys()
        for row in la.profiles:
            np.testing.assert_array_equal(la.profiles[row], lb.profiles[row])
        for name, values in la.stats.items():
            assert all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(values, lb.stats[name], strict=True))


@pytest.fixture(scope="module")
def matrix_events(tiny_config_files) -> list[object]:
    """A real two-cell matrix with attention, plus a cell that cannot load."""
    specs = [ModelSpec(str(tiny_config_files["llama"]), device="cpu"),
             ModelSpec(str(tiny_config_files["llama"]), device="cpu", attn_implementation="eager"),
             ModelSpec("/nowhere/config.json", device="cpu")]
    cfg = fast_config((16, 32), attention=CaptureConfig(tiles=8, layers=(0, -1)))
    events, _ = drain(run_matrix(specs, cfg, slot=ModelSlot()))
    return events


def test_every_event_of_a_real_matrix_round_trips(matrix_events) -> None:
    kinds = set()
    for event in matrix_events:
        back = through_wire(event)
        kinds.add(type(event).__name__)
        assert type(back) is type(event)
        if isinstance(event, AttentionResult):
            same_attention(event, back)
        else:
            assert back == event, type(event).__name__
    # TelemetrySample is not required here: the sampler's first reading comes one period
    # after the start, and a tiny matrix on a fast machine can finish before it (CI did).
    # A real reading round-trips below, a hand-made one in the next test.
    assert kinds >= {"ModelLoading", "ModelReady", "SweepStarted", "Progress", "PointResult", "AttentionResult",
                     "CellFinished", "CellFailed"}


def test_a_real_telemetry_reading_round_trips() -> None:
    from ctxscope.core.machine.telemetry import TelemetrySampler

    reading = TelemetrySampler(hz=0).sample()
    assert reading.rss_bytes > 0
    assert through_wire(reading) == reading


def test_the_other_events_round_trip() -> None:
    spec = ModelSpec("preset:gpt2", dtype="float16", device="cuda:1", attn_implementation="eager")
    check = MemoryCheck(mode="decode", length=4096, need_bytes=10, kv_bytes=4, available_bytes=None, where="cpu")
    events = [
        QualityPoint(LossPoint(context=512, status="ok", window_nll=(2.5, 2.25), seconds=0.5)),
        QualityPoint(LossPoint(context=1024, status="oom", error="out of memory")),
        QualityPoint(NeedleTrial(kind="grid", length=1024, depth=50.0, seed=1, status="ok", key="12345", found=True,
                                 key_logprob=-0.25, answer="12345", position=400, seconds=0.1)),
        QualityPoint(NeedleTrial(kind="no-key", length=1024, depth=None, seed=0, status="skipped")),
        QualityPoint(NeedleTrial(kind="grid", length=1024, depth=50.0, seed=0, status="ok", key="quiet-harbor",
                                 task="multikey", expected=("1234567",), distractors=("7654321", "1111111"),
                                 found=False, recall=0.0, false_hits=1, answer=" 7654321.", positions=(40, 300))),
        Trial(length=2048, fits=False, status="oom", peak_bytes=None, seconds=1.5),
        ModelLoading(spec), CellFailed(spec, "flash_attention_2 is not installed"),
        AttentionResult(length=64, status="oom", entries=({"length": 64, "status": "oom", "error": "x", "stats": {}},),
                        error="x"),
        TelemetrySample(t=1.0, cpu_percent=12.5, rss_bytes=1 << 30, gpu_util_percent=99.0, power_w=350.5,
                        other_processes=2, slowdown_mask=4),
    ]
    for event in events:
        assert through_wire(event) == event
    assert memory_check_from_dict(json.loads(json.dumps(asdict(check)))) == check
    answer = MaxContext(mode="prefill", budget_bytes=1 << 33, granularity=256, predicted=9000, largest_fit=8192,
                        smallest_fail=8448, trials=(Trial(8192, True, "ok", 123, 0.5), Trial(8448, False, "oom", None, 0.7)))
    assert maxctx_from_dict(json.loads(json.dumps(maxctx_to_dict(answer)))) == answer


def test_jobs_round_trip_and_are_validated() -> None:
    cfg = fast_config((128, 1024), attention=CaptureConfig(tiles=16, layers=(0, -1), span=(3, 9)),
                      quality=QualityConfig(kinds=("loss",), depths=(0.0, 50.0), tasks=("single", "vt"),
                                            text_encoding="cp1252"), needle="the key", threads=2)
    jobs = [Job("matrix", (ModelSpec("preset:gpt2"), ModelSpec("demo:smollm2", dtype="bfloat16", rope_scaling="yarn:2")), cfg,
                cap_lengths=True, strict=False, ask=True),
            Job("maxctx", (ModelSpec("preset:gpt2"),), maxctx=MaxContextRequest(mode="decode", budget=1 << 30)),
            Job("load", (ModelSpec("x", trust_remote_code=True),))]
    for job in jobs:
        assert job_from_dict(json.loads(json.dumps(job_to_dict(job)))) == job
    bad = job_to_dict(jobs[0])
    for broken, message in ((dict(bad, kind="shell"), "unknown job kind"), (dict(bad, specs=[]), "at least one model"),
                            (dict(bad, config=dict(bad["config"], lengths="128")), "lengths"),
                            (dict(bad, specs=[{"source": 5}]), "source"), (dict(bad, strict="yes"), "booleans")):
        with pytest.raises(WireError, match=message):
            job_from_dict(broken)


@pytest.mark.parametrize("line, message", [
    (b"Welcome to gpu-box!\n", "not JSON"), (b"[1, 2]\n", "not a ctxscope message"),
    (b'{"type": "event", "event": "Progress", "done": "1"}\n', "done"),
    (b'{"type": "event", "event": "os.system"}\n', "unknown event"),
    (b'{"type": "event", "event": "PointResult", "point": {"mode": "prefill", "length": 8, "batch_size": 1, '
     b'"status": "oom"}}\n', "status 'oom'"),
    (b'{"type": "event", "event": "SweepStarted", "header": {"schema": "ctxscope.run/1"}}\n', "model"),
    # The typed blocks are checked as a file's are (core.blocks), naming the key.
    (b'{"type": "event", "event": "AttentionResult", "length": 8, "status": "ok", "entries": '
     b'[{"length": 8, "status": "ok", "stats": {"entropy": ["x"]}}]}\n', r"entries\[0\]\.stats\.entropy\[0\]"),
    (b'{"type": "event", "event": "PointResult", "point": {"mode": "prefill", "length": 8, "batch_size": 1, '
     b'"status": "ok", "telemetry": {"power_mean_w": "hot"}}}\n', r"telemetry\.power_mean_w: expected a number"),
])
def test_garbage_is_refused_in_one_line(line: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message) as info:
        event_from_dict(loads(line), ArrayAssembler())
    assert "\n" not in str(info.value)


def test_maps_are_bounded_before_they_inflate() -> None:
    bomb = base64.b64encode(zlib.compress(bytes(64 * 1024**2))).decode()  # 64 MiB of zeros in ~64 KiB
    arrays = ArrayAssembler()
    with pytest.raises(WireError, match="does not match the declared shape"):
        arrays.add({"type": "array", "name": "L8_layer0", "dtype": "<f4", "shape": [4, 4, 4], "chunk": 0,
                    "chunks": 1, "data": bomb})
    with pytest.raises(WireError, match="bytes, more than"):
        arrays.add({"type": "array", "name": "big", "dtype": "<f4", "shape": [1 << 30], "chunk": 0, "chunks": 1,
                    "data": ""})
    with pytest.raises(WireError, match="malformed"):
        arrays.add({"type": "array", "name": "obj", "dtype": "|O", "shape": [1], "chunk": 0, "chunks": 1, "data": ""})
    # A map larger than one chunk arrives whole.
    big = np.arange(CHUNK_BYTES // 2, dtype=np.float32).reshape(2, -1)
    from ctxscope.core.wire_arrays import _chunks

    arrays = ArrayAssembler()
    messages = list(_chunks("m", big))
    assert len(messages) == 2
    for m in messages:
        arrays.add(json.loads(json.dumps(m)))
    np.testing.assert_array_equal(arrays.take("m"), big)


def test_job_lines_end_with_the_result_or_one_error(tiny_config_files) -> None:
    spec = ModelSpec(str(tiny_config_files["gpt2"]), device="cpu")
    lines = list(job_lines(Job("matrix", (spec,), fast_config((8,)), cap_lengths=True)))
    relay = Relay(Job("matrix", (spec,), fast_config((8,))), "test")
    relay.feed(json.dumps({"type": "hello", "protocol": 1, "ctxscope": __import__("ctxscope").__version__,
                           "torch": "t", "transformers": "t", "cuda": None, "python": "3", "hostname": "test",
                           "pid": 1, "devices": []}))
    answers = [relay.feed(line) for line in lines]
    assert answers[-1][0] == "end" and answers[-1][1][0].status == "complete"
    assert answers[-1][1][0].header.environment.host == "test"
    bad = list(job_lines(Job("matrix", (ModelSpec("/nowhere/x.json", device="cpu"),), fast_config((8,)))))
    assert len(bad) == 2 and json.loads(bad[-1])["kind"] == "input" and "/nowhere" in json.loads(bad[-1])["message"]
    stop = threading.Event()
    stop.set()
    cancelled = list(job_lines(Job("load", (spec,)), stop=stop))
    assert json.loads(cancelled[-1])["type"] == "end"


def test_the_handshake_names_both_versions() -> None:
    relay = Relay(Job("load", (ModelSpec("x"),)), "me@box")
    with pytest.raises(WireError, match="login script"):
        relay.feed(b"Last login: Mon\n")
    relay = Relay(Job("load", (ModelSpec("x"),)), "me@box")
    with pytest.raises(RemoteError, match=r"me@box runs ctxscope 0\.0\.1 .* this machine ctxscope \d"):
        relay.feed(json.dumps({"type": "hello", "protocol": 1, "ctxscope": "0.0.1"}))
