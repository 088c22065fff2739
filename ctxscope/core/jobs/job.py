"""A unit of work another process can run — a sweep or matrix (quality passes are part
of a sweep), a max-context search, or just loading a model — as plain data with a
JSON form, and the generator that runs it and writes its events as wire lines.

``ctxscope worker`` (one job over SSH) and each Ray task (one matrix cell) run
:func:`job_lines`; the local side reads the lines back with
:class:`ctxscope.remote.relay.Relay` and sees the same events a local run yields.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import ctxscope
from ctxscope.core.errors import BadInputError, CtxscopeError, DeviceError
from ctxscope.core.limits import check_sweep, check_threads
from ctxscope.core.events import JobEvent, JobResult, ModelLoading, ModelReady
from ctxscope.core.jobs.matrix import ModelSlot
from ctxscope.core.spec import ModelSpec, SweepConfig
from ctxscope.core.wire import PROTOCOL, WireError, _record, dumps, event_lines, maxctx_to_dict, spec_from_dict

if TYPE_CHECKING:
    from ctxscope.core.model.loading import LoadedModel

#: Each job kind and the key its result travels under on the wire (``end`` line): the
#: one table a new kind of job is added to (with its branch in :func:`run_job`).
RESULT_OF = {"matrix": "runs", "maxctx": "maxctx", "load": "summary"}
KINDS = tuple(RESULT_OF)
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MaxContextRequest:
    """The max-context search's settings (see :func:`ctxscope.core.maxctx.run.find_max_context`)."""

    mode: str | None = None
    budget: int | None = None
    granularity: int = 256
    batch: int = 1
    allow_beyond_max: bool = False
    cache: str = "dynamic"  # the KV-cache strategy the trials fill


@dataclass(frozen=True, slots=True)
class Job:
    """What a worker runs.

    Attributes
    ----------
    kind
        ``"matrix"`` (every spec swept with ``config``; one spec is a plain sweep),
        ``"maxctx"`` (the longest context of the one spec) or ``"load"`` (load it and
        describe it: a check that the remote can).
    cap_lengths
        Drop lengths beyond the model's maximum positions (the CLI's default lengths),
        keeping at least one.
    strict
        A cell that cannot run ends the job with its error (a single sweep) instead of
        being recorded as a :class:`~ctxscope.core.jobs.matrix.CellFailed`.
    ask
        Ask the local side (a ``confirm`` line) before points the memory guard
        predicts cannot fit; otherwise ``config.force`` decides, as in the CLI.
    """

    kind: str
    specs: tuple[ModelSpec, ...]
    config: SweepConfig | None = None
    cap_lengths: bool = False
    strict: bool = True
    maxctx: MaxContextRequest | None = None
    ask: bool = False
    caches: tuple[str, ...] = ()  # one KV-cache strategy per spec (the cache axis); empty: the config's

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BadInputError(f"unknown job kind {self.kind!r}: use {', '.join(KINDS)}")
        if not self.specs:
            raise BadInputError("a job needs at least one model")
        if self.kind == "matrix" and self.config is None:
            raise BadInputError("a sweep job needs its sweep settings")
        if self.kind != "matrix" and len(self.specs) != 1:
            raise BadInputError(f"a {self.kind} job takes one model")
        if self.caches:
            from ctxscope.core.measure.kv_cache import STRATEGIES

            if len(self.caches) != len(self.specs) or any(c not in STRATEGIES for c in self.caches):
                raise BadInputError(f"caches: one of {', '.join(STRATEGIES)} per model cell")


# -- JSON ---------------------------------------------------------------------------
def config_to_dict(cfg: SweepConfig) -> dict[str, Any]:
    return asdict(cfg)  # CaptureConfig and QualityConfig are plain dataclasses too


def config_from_dict(data: Any, where: str = "config") -> SweepConfig:
    from ctxscope.core.attention.config import CaptureConfig
    from ctxscope.core.quality.config import QualityConfig

    if not isinstance(data, dict):
        raise WireError(f"{where}: expected an object")
    cfg = _record(SweepConfig, {**data, "attention": None, "quality": None}, where)
    attention, quality = data.get("attention"), data.get("quality")
    cfg = replace(cfg, attention=None if attention is None else _record(CaptureConfig, attention, f"{where}.attention"),
                  quality=None if quality is None else _record(QualityConfig, quality, f"{where}.quality"))
    try:
        check_sweep(cfg)  # a seed torch cannot take, a span that is not two positions
    except BadInputError as exc:
        raise WireError(f"{where}: {exc}") from None
    return cfg


def job_to_dict(job: Job) -> dict[str, Any]:
    return {"kind": job.kind, "specs": [asdict(s) for s in job.specs],
            "config": config_to_dict(job.config) if job.config is not None else None, "cap_lengths": job.cap_lengths,
            "strict": job.strict, "maxctx": asdict(job.maxctx) if job.maxctx is not None else None, "ask": job.ask,
            "caches": list(job.caches)}


def job_from_dict(data: Any) -> Job:
    """Validate a job received from the other side (:class:`WireError` when malformed)."""
    if not isinstance(data, dict) or not isinstance(data.get("specs"), list):
        raise WireError("job: expected an object with a list of specs")
    specs = tuple(spec_from_dict(s, f"job.specs[{i}]") for i, s in enumerate(data["specs"]))
    config = data.get("config")
    request = data.get("maxctx")
    flags = {name: data.get(name, False) for name in ("cap_lengths", "strict", "ask")}
    if not isinstance(data.get("kind"), str) or not all(type(v) is bool for v in flags.values()):
        raise WireError("job: kind must be a string and cap_lengths, strict, ask booleans")
    caches = data.get("caches", [])
    if not isinstance(caches, list) or not all(isinstance(c, str) for c in caches):
        raise WireError("job: caches must be a list of strategy names")
    try:
        return Job(kind=data["kind"], specs=specs,
                   config=None if config is None else config_from_dict(config, "job.config"),
                   maxctx=None if request is None else _record(MaxContextRequest, request, "job.maxctx"),
                   caches=tuple(caches), **flags)
    except BadInputError as exc:
        raise WireError(f"job: {exc}") from None


# -- running ----------------------------------------------------------------------------
def capped(cfg: SweepConfig) -> Callable[[LoadedModel], SweepConfig]:
    """``cfg`` with lengths beyond a loaded model's maximum positions dropped."""

    def config(loaded: LoadedModel) -> SweepConfig:
        limit = loaded.info.max_positions or 1 << 30
        lengths = tuple(n for n in cfg.lengths if n <= limit) or (min(128, limit),)
        return replace(cfg, lengths=lengths)

    return config


def run_job(job: Job, *, stop: threading.Event | None = None, slot: ModelSlot | None = None,
            confirm: Callable[[Any], bool] | None = None) -> Generator[JobEvent, None, JobResult]:
    """Run ``job`` here, yielding the same events a local front end sees.

    Returns what the job's generator returns: the matrix's runs, the
    :class:`~ctxscope.core.maxctx.search.MaxContext`, or the loaded model's summary.
    """
    from ctxscope.core.jobs.matrix import run_matrix, summarize

    if job.kind == "matrix":
        assert job.config is not None
        check_threads(job.config.threads, socket.gethostname())  # this host's cores, not the sender's
        config = capped(job.config) if job.cap_lengths else job.config
        return (yield from run_matrix(job.specs, config, slot=slot, stop=stop, confirm=confirm, strict=job.strict,
                                      caches=job.caches))
    own = slot is None
    slot = slot or ModelSlot()
    spec = job.specs[0]
    try:
        yield ModelLoading(spec)
        loaded = slot.acquire(spec)
        summary = summarize(loaded, spec)
        yield ModelReady(summary)
        if job.kind == "load":
            return summary
        from ctxscope.core.maxctx.run import find_max_context

        r = job.maxctx or MaxContextRequest()
        return (yield from find_max_context(loaded, mode=r.mode, budget=r.budget, granularity=r.granularity,
                                            batch=r.batch, allow_beyond_max=r.allow_beyond_max, stop=stop,
                                            cache=r.cache))
    finally:
        if own:
            slot.drop()


def hello(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The worker's first line: versions and devices, so the local side can refuse a
    mismatch before any work and say what the remote has."""
    import torch
    import transformers

    devices = [{"id": f"cuda:{i}", "name": torch.cuda.get_device_name(i),
                "total_bytes": int(torch.cuda.get_device_properties(i).total_memory)}
               for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)]
    devices.append({"id": "cpu", "name": platform.processor() or platform.machine(), "total_bytes": None})
    return {"type": "hello", "protocol": PROTOCOL, "ctxscope": ctxscope.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "hostname": socket.gethostname(), "pid": os.getpid(), "devices": devices, **(extra or {})}


def job_lines(job: Job, *, stop: threading.Event | None = None,
              confirm: Callable[[Any], bool] | None = None) -> Iterator[str]:
    """Run ``job`` and yield its wire lines: every event (maps first), then one ``end``
    line with the result, or one ``error`` line (kind ``input``, ``device`` or
    ``internal``) saying why it stopped."""
    gen = run_job(job, stop=stop, confirm=confirm if job.ask else None)
    try:
        while True:
            try:
                event = next(gen)
            except StopIteration as done:
                yield dumps({"type": "end", **_result(done.value)})
                return
            yield from event_lines(event)
    except DeviceError as exc:
        yield dumps({"type": "error", "kind": "device", "message": str(exc)})
    except CtxscopeError as exc:
        yield dumps({"type": "error", "kind": "input", "message": str(exc)})
    except Exception as exc:  # a bug or a library failure: the traceback goes to the log (stderr)
        log.exception("ctxscope worker: the job failed")
        yield dumps({"type": "error", "kind": "internal", "message": f"{type(exc).__name__}: {exc}"})
    finally:
        gen.close()


def _result(value: Any) -> dict[str, Any]:
    from ctxscope.core.events import LoadedSummary
    from ctxscope.core.maxctx.search import MaxContext
    from ctxscope.core.wire import summary_to_dict

    if isinstance(value, MaxContext):
        return {"maxctx": maxctx_to_dict(value)}
    if isinstance(value, LoadedSummary):
        return {"summary": summary_to_dict(value)}
    return {"runs": [r.id for r in value or ()]}
