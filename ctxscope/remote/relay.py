"""The local end of a worker's line stream: checks the handshake, turns lines back into
the core's events, records where the run was measured, and — when the stream breaks
off — closes the run that was open with every point that arrived."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import ctxscope
from ctxscope.core.blocks import AttentionEntry
from ctxscope.core.errors import CtxscopeError
from ctxscope.core.events import (AttentionResult, CellFailed, CellFinished, ModelReady, PointFailed, PointResult,
                                  SweepStarted)
from ctxscope.core.jobs.job import RESULT_OF, Job
from ctxscope.core.quality.records import LossPoint, NeedleTrial, QualityPoint, QualityResult
from ctxscope.core.results import Point, RunHeader, RunResult
from ctxscope.core.wire import (PROTOCOL, WireError, event_from_dict, loads, maxctx_from_dict,
                                memory_check_from_dict, summary_from_dict)
from ctxscope.core.wire_arrays import ArrayAssembler
from ctxscope.remote.sanitize import MAX_HOSTNAME, clean_line, clean_message


class RemoteError(CtxscopeError):
    """The remote side failed before or outside a run: unreachable, no ctxscope there, a
    different version, a broken stream. The first line says which host and why; the
    remote's stderr, when there was any, follows."""


class RemoteLost(RemoteError):
    """The connection ended (or went silent) after the handshake, before the job did:
    every run that arrived is kept; the job is not complete (CLI exit code 3, as for a
    run that broke off)."""

    exit_code = 3


def with_stderr(line: str, tail: str) -> str:
    """``line``, then the remote's last stderr lines (never swallowed)."""
    tail = tail.strip()
    if not tail:
        return line
    return line + "\n  remote stderr:\n" + "\n".join("    " + row for row in tail.splitlines())


@dataclass(frozen=True, slots=True)
class Hello:
    """What the worker said about itself before any work."""

    ctxscope: str
    torch: str
    transformers: str
    cuda: str | None
    python: str
    hostname: str
    pid: int
    devices: tuple[dict[str, Any], ...]
    node: str | None = None  # a Ray node's address
    gpus: tuple[str, ...] = ()  # the GPUs Ray gave the task

    def describe(self) -> str:
        gpus = [d for d in self.devices if str(d.get("id", "")).startswith("cuda")]
        names = sorted({str(d.get("name")) for d in gpus})
        kind = f"{len(gpus)} × {', '.join(names)}" if gpus else "no GPU"
        return f"host {self.hostname}, ctxscope {self.ctxscope}, torch {self.torch}, {kind}"


def hello_from_dict(data: dict[str, Any], where: str) -> Hello:
    """Check the handshake: same protocol and same ctxscope version, or a refusal that
    names both versions."""
    theirs = data.get("ctxscope")
    if data.get("protocol") != PROTOCOL or theirs != ctxscope.__version__:
        raise RemoteError(f"{where} runs ctxscope {str(theirs)[:40]} (protocol {str(data.get('protocol'))[:10]}), "
                          f"this machine ctxscope {ctxscope.__version__} (protocol {PROTOCOL}): install the same "
                          "version on both (with --host, --remote-install brings this one there)")
    strings = ("torch", "transformers", "python", "hostname")
    devices = data.get("devices")
    if not all(isinstance(data.get(k), str) for k in strings) or type(data.get("pid")) is not int \
            or not isinstance(devices, list) or not all(isinstance(d, dict) for d in devices):
        raise WireError("a hello without versions, host name, process id and devices")
    gpus = data.get("gpus") or []
    # Shown on one line and stored in every run: one line each, bounded (strings are
    # already free of control characters: Relay.feed cleans every message).
    name = clean_line(data["hostname"], MAX_HOSTNAME)

    def version(key: str) -> str:
        return clean_line(data[key], 100)

    return Hello(ctxscope=theirs, torch=version("torch"), transformers=version("transformers"),
                 cuda=version("cuda") if isinstance(data.get("cuda"), str) else None, python=version("python"),
                 hostname=name or "?", pid=data["pid"], devices=tuple(devices),
                 node=clean_line(data["node"], MAX_HOSTNAME) if isinstance(data.get("node"), str) else None,
                 gpus=tuple(clean_line(str(g), 40) for g in gpus[:64]) if isinstance(gpus, list) else ())


class _OpenRun:
    """The run being received: enough to close it if the stream breaks off."""

    def __init__(self, header: RunHeader) -> None:
        self.header = header
        self.points: list[Point] = []
        self.attention: list[AttentionEntry] = []
        self.quality: list[LossPoint | NeedleTrial] = []

    def result(self, status: str, error: str) -> RunResult:
        quality = None
        if self.header.settings.quality is not None:
            quality = QualityResult(loss=tuple(q for q in self.quality if isinstance(q, LossPoint)),
                                    needle=tuple(q for q in self.quality if isinstance(q, NeedleTrial)))
        finished = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
        return RunResult(header=self.header, status=status, points=tuple(self.points), finished=finished,
                         attention=tuple(self.attention), error=error, quality=quality)


class Relay:
    """Feed it the worker's lines, in order; :meth:`feed` answers what each one was.

    ``where`` names the other side in messages (``user@gpu-box``); runs record it as
    ``environment.host`` (a Ray node's address and GPUs instead, when the worker says).
    """

    def __init__(self, job: Job, where: str) -> None:
        self.job, self.where = job, where
        self.hello: Hello | None = None
        self.host = where
        self.results: list[RunResult] = []
        self.cells_done = 0
        self.lines = 0
        self._arrays = ArrayAssembler()
        self._open: _OpenRun | None = None

    @property
    def open_points(self) -> int:
        return len(self._open.points) if self._open is not None else 0

    @property
    def running(self) -> bool:
        """Whether a run has started and not ended."""
        return self._open is not None

    def feed(self, line: bytes | str) -> tuple[str, Any] | None:
        """``("hello", Hello)``, ``("event", event)``, ``("confirm", MemoryCheck)``,
        ``("end", value)``, ``("error", (kind, message))``, or ``None`` (a map chunk).

        Raises :class:`WireError` for anything malformed and :class:`RemoteError` for
        a version mismatch."""
        self.lines += 1
        try:
            message = loads(line)
        except WireError as exc:
            if self.hello is None:
                raise WireError(f"{exc} before ctxscope's handshake (does a login script print to stdout?)") from None
            raise
        kind = message["type"]
        if kind != "array":  # an array's payload is base64, checked as such; its name is shown as repr
            message = clean_message(message)
        if self.hello is None:
            if kind != "hello":
                raise WireError(f"a {kind!r} message before ctxscope's handshake")
            self.hello = hello_from_dict(message, self.where)
            if self.hello.node:
                gpus = f" GPU {','.join(self.hello.gpus)}" if self.hello.gpus else ""
                self.host = f"ray node {self.hello.node}{gpus}"
            elif self.hello.hostname.split(".")[0] not in self.where:
                self.host = f"{self.where} ({self.hello.hostname})"
            return "hello", self.hello
        if kind == "array":
            self._arrays.add(message)
            return None
        if kind == "alive":  # the worker's heartbeat while a model call runs: only its arrival counts
            return None
        if kind == "event":
            return "event", self._track(event_from_dict(message, self._arrays))
        if kind == "confirm":
            return "confirm", memory_check_from_dict(message.get("check"))
        if kind == "end":
            return "end", self._end(message)
        if kind == "error":
            text, what = message.get("message"), message.get("kind")
            if not isinstance(text, str) or not isinstance(what, str):
                raise WireError("an error message without kind and text")
            return "error", (what, clean_line(text))
        raise WireError(f"unknown message type {kind[:40]!r}")

    def _stamp(self, header: RunHeader) -> RunHeader:
        return replace(header, environment=replace(header.environment, host=self.host))

    def _track(self, event: Any) -> Any:
        """The event as the front ends get it; every event that belongs to a run must
        come while that run is open, so nothing that arrives is ever dropped unseen."""
        run = self._open
        if isinstance(event, (PointResult, PointFailed, AttentionResult, QualityPoint, CellFinished)) and run is None:
            raise WireError(f"a {type(event).__name__} before its run's SweepStarted")
        if isinstance(event, SweepStarted):
            if run is not None:
                raise WireError(f"run {event.header.id[:64]} started while run {run.header.id} was still open")
            event = SweepStarted(self._stamp(event.header))
            self._open = _OpenRun(event.header)
        elif isinstance(event, (PointResult, PointFailed)) and run is not None:
            run.points.append(event.point)
        elif isinstance(event, AttentionResult) and run is not None:
            run.attention.extend(event.entries)
        elif isinstance(event, QualityPoint) and run is not None:
            run.quality.append(event.item)
        elif isinstance(event, CellFinished) and run is not None:
            if event.result.id != run.header.id:
                raise WireError(f"run {event.result.id[:64]} finished while run {run.header.id} was open")
            event = CellFinished(event.spec, replace(event.result, header=self._stamp(event.result.header)))
            self.results.append(event.result)
            self._open, self.cells_done = None, self.cells_done + 1
        elif isinstance(event, CellFailed):
            if run is not None:  # failed mid-run: the run is kept, with every point it had
                closed = self.abandon("failed", event.message)
                assert closed is not None
                return closed
            self.cells_done += 1
        elif isinstance(event, ModelReady):
            # Its GPUs are the remote's: this machine's telemetry cannot follow them.
            event = ModelReady(replace(event.summary, gpu_uuids=()))
        return event

    def _end(self, message: dict[str, Any]) -> Any:
        """The job's result, which must be what this kind of job returns."""
        if self._open is not None:
            raise WireError(f"the job ended while run {self._open.header.id} was still open")
        expected = RESULT_OF[self.job.kind]
        if expected not in message:
            got = next((k for k in RESULT_OF.values() if k in message), None)
            raise WireError(f"a {self.job.kind} job ended with {'a ' + got if got else 'no result'}, not its {expected}")
        if expected == "maxctx":
            return maxctx_from_dict(message["maxctx"])
        if expected == "summary":
            return summary_from_dict(message["summary"])
        runs = message["runs"]
        if not isinstance(runs, list) or not all(isinstance(r, str) for r in runs):
            raise WireError("end.runs: expected a list of run ids")
        received = [r.id for r in self.results]
        if [r for r in runs if r not in received]:
            raise WireError(f"the job ended naming {len(runs)} run(s) of which only {len(received)} arrived")
        return tuple(self.results)

    def abandon(self, status: str, error: str) -> CellFinished | None:
        """Close the run that was being received (``interrupted``, ``failed``,
        ``cancelled``) with every point that arrived; ``None`` when none was open."""
        if self._open is None:
            return None
        result = self._open.result(status, error)
        spec = self.job.specs[min(self.cells_done, len(self.job.specs) - 1)]
        self._open, self.cells_done = None, self.cells_done + 1
        self.results.append(result)
        return CellFinished(spec, result)
