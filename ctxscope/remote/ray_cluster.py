"""A matrix fanned out over a Ray cluster: each model × dtype × kernel cell is one Ray
task asking for one GPU (on a cluster without GPUs: ``cpus_per_cell`` CPUs), run on
whatever node Ray picks, all in parallel. The only module of ctxscope that imports Ray.

A task runs the core's own job (:func:`ctxscope.core.jobs.job_lines`) and streams its
wire lines back (a Ray streaming generator); here each cell's lines go through a
:class:`~ctxscope.remote.relay.Relay`, so the front ends receive the same events as
from a local matrix. Front ends record one run at a time, so one cell streams live and
the others are held until it is done (finished cells first), then replayed whole.
A cell whose worker or node dies is recorded with every point that arrived and why;
the rest go on. Cancel sets a flag the running tasks poll (each run ends
``cancelled`` after its current model call) and cancels the tasks not yet started.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace
from typing import Any

from ctxscope.core.errors import BadInputError
from ctxscope.core.jobs import Job, job_to_dict
from ctxscope.core.matrix import CellFailed, CellFinished
from ctxscope.core.wire import WireError, dumps
from ctxscope.remote.relay import Hello, Relay, RemoteError

INSTALL = 'Ray is not installed: pip install "ctxscope[cluster]" (or pip install "ray[client]")'
_connected: str | None = None


def import_ray() -> Any:
    """Ray, or a one-line :class:`BadInputError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise BadInputError(f"--cluster: {INSTALL}") from None
    return ray


def connect(address: str) -> Any:
    """Join the cluster at ``address`` (``auto``: the one Ray already knows of —
    ``$RAY_ADDRESS``, one started on this machine with ``ray start`` — else a new local
    one with this machine's CPUs and GPUs). Kept open for the next matrix."""
    global _connected
    ray = import_ray()
    if ray.is_initialized() and (address == "auto" or address == _connected):
        return ray
    if ray.is_initialized():
        ray.shutdown()
    quiet = dict(log_to_driver=False, logging_level=logging.ERROR)
    try:
        if address == "auto":
            try:
                ray.init(address="auto", **quiet)
            except ConnectionError:
                ray.init(include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except Exception as exc:  # Ray's own errors name the cause: keep its first line
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BadInputError(f"--cluster {address}: cannot join the Ray cluster ({reason})") from None
    _connected = address
    return ray


class _StopFlag:
    """A tiny actor the running cells poll: Ray's own cancel interrupts a task
    mid-call; this lets a run end ``cancelled`` after its model call, cleaned up."""

    def __init__(self) -> None:
        self.stopped = False

    def set(self) -> None:
        self.stopped = True

    def is_set(self) -> bool:
        return self.stopped


def _cell(job: dict[str, Any], flag: Any) -> Iterator[str]:
    """The task: a hello naming the node and GPUs, then the job's wire lines."""
    import ray

    from ctxscope.core.jobs import hello, job_from_dict, job_lines

    node = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    yield dumps(hello({"node": node, "gpus": [str(g) for g in ray.get_gpu_ids()]}))
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                if ray.get(flag.is_set.remote(), timeout=10):
                    stop.set()
            except Exception:  # the driver went away: stop as a lost connection would
                stop.set()
            time.sleep(0.25)

    threading.Thread(target=poll, daemon=True).start()
    try:
        yield from job_lines(job_from_dict(job), stop=stop)
    finally:
        stop.set()


def run_on_cluster(address: str, job: Job, *, stop: threading.Event | None = None, cpus_per_cell: int = 1,
                   say: Callable[[str], None] = lambda text: None,
                   on_hello: Callable[[int, Hello], None] | None = None) -> Generator[Any, None, tuple[Any, ...]]:
    """Run every cell of a matrix ``job`` as its own Ray task; yield the events of each
    cell in turn (see the module's docstring); return the runs in the order shown.

    ``on_hello(cell, hello)`` is told where each cell runs (node, process, GPUs)."""
    ray = connect(address)
    stop = stop or threading.Event()
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    cfg = job.config
    assert cfg is not None and job.kind == "matrix"
    cells: list[tuple[Job, dict[str, Any]]] = []
    for spec in job.specs:
        if gpus and spec.device != "cpu":
            # Ray gives the task one GPU and hides the others: it is this task's "cuda".
            cell_spec, options = replace(spec, device="cuda" if spec.device.startswith("cuda") else spec.device), \
                {"num_gpus": 1, "num_cpus": 1}
            cell_cfg = cfg
        else:
            cell_spec, options = spec, {"num_cpus": cpus_per_cell}
            cell_cfg = cfg if cfg.threads is not None else replace(cfg, threads=cpus_per_cell)
        cells.append((replace(job, specs=(cell_spec,), config=cell_cfg, strict=False), options))
    if gpus:
        say(f"Ray cluster: {nodes} node(s), {gpus} GPU(s): {len(cells)} cell(s), one GPU each")
    else:
        say(f"Ray cluster: {nodes} node(s), no GPU, {cpus} CPU(s): {len(cells)} cell(s) on CPU with {cpus_per_cell} "
            f"CPU(s) and torch thread(s) each, up to {max(1, cpus // cpus_per_cell)} at a time (cells side by side "
            "share memory bandwidth: compare CPU latencies with that in mind)")
    flag = ray.remote(num_cpus=0)(_StopFlag).remote()
    task = ray.remote(_cell)
    streams = {task.options(num_returns="streaming", max_retries=0, **options).remote(job_to_dict(cell), flag): i
               for i, (cell, options) in enumerate(cells)}
    feed = _Cells([cell for cell, _ in cells], say, on_hello)
    stop_sent = False
    try:
        while streams:
            if stop.is_set() and not stop_sent:
                stop_sent = True
                flag.set.remote()
                for stream, i in streams.items():
                    if feed.relays[i].hello is None:
                        ray.cancel(stream)  # not started: never will
            ready, _ = ray.wait(list(streams), num_returns=1, timeout=0.2)
            for stream in ready:
                i = streams[stream]
                if feed.read(ray, i, stream, cancelled=stop_sent):
                    del streams[stream]
            yield from feed.flush()
    finally:
        for stream in streams:
            ray.cancel(stream, force=True)
        ray.kill(flag)
    yield from feed.flush()
    return tuple(feed.results)


class _Cells:
    """Per-cell relays and held events; one cell at a time is shown."""

    def __init__(self, jobs: list[Job], say: Callable[[str], None],
                 on_hello: Callable[[int, Hello], None] | None) -> None:
        self.jobs, self.say, self.on_hello = jobs, say, on_hello
        self.relays = [Relay(job, f"cell {i + 1}") for i, job in enumerate(jobs)]
        self.held: list[list[Any]] = [[] for _ in jobs]
        self.done = [False] * len(jobs)
        self.order: list[int] = []  # cells that have something to show, in the order shown
        self.results: list[Any] = []

    def read(self, ray: Any, i: int, stream: Any, *, cancelled: bool) -> bool:
        """Take one line of cell ``i``; True when its stream is over."""
        relay, spec = self.relays[i], self.jobs[i].specs[0]
        where = f"{relay.host} (pid {relay.hello.pid})" if relay.hello is not None else "its Ray task"
        try:
            line = ray.get(next(stream))
            answer = relay.feed(line)
        except StopIteration:
            return self._end(i, "interrupted", f"{where} ended without a result")
        except WireError as exc:
            ray.cancel(stream, force=True)
            return self._end(i, "failed", f"{where} sent something that is not a ctxscope message ({exc})")
        except RemoteError as exc:
            ray.cancel(stream, force=True)
            return self._end(i, "failed", str(exc))
        except Exception as exc:  # a Ray error: the worker or its node died, or the task was cancelled
            if cancelled and type(exc).__name__ == "TaskCancelledError" and relay.hello is None:
                self.done[i] = True
                return True  # cancelled before it started: nothing to record
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            return self._end(i, "interrupted", f"lost on {where}: {type(exc).__name__}" + (f" ({reason})" if reason else ""))
        if answer is None:
            return False
        kind, value = answer
        if kind == "hello":
            self.say(f"cell {i + 1} ({spec.source} {spec.dtype} {spec.attn_implementation or 'default'}) runs on "
                     f"{relay.host} (pid {value.pid})")
            if self.on_hello is not None:
                self.on_hello(i, value)
        elif kind == "event":
            self._hold(i, value)
        elif kind == "error":
            self._hold(i, CellFailed(spec, f"{relay.host}: {value[1]}"))
        elif kind == "end":
            self.done[i] = True
        return self.done[i]

    def _end(self, i: int, status: str, why: str) -> bool:
        finished = self.relays[i].abandon(status, why)
        spec = self.jobs[i].specs[0]
        self._hold(i, finished if finished is not None else CellFailed(spec, why))
        self.done[i] = True
        return True

    def _hold(self, i: int, event: Any) -> None:
        if i not in self.order:
            self.order.append(i)
        self.held[i].append(event)

    def flush(self) -> Iterator[Any]:
        """Show the current cell's events; once it is done, the finished cells next."""
        while self.order:
            head = self.order[0]
            events, self.held[head] = self.held[head], []
            for event in events:
                if isinstance(event, CellFinished):
                    self.results.append(event.result)
                yield event
            if not self.done[head]:
                return
            self.order.pop(0)
            self.order.sort(key=lambda j: not self.done[j])  # finished cells first: nothing to wait for
