"""The one place where a job's event stream becomes history rows: each run is recorded
as its events arrive (a crash loses nothing recorded), finished with its status, and
written where the front end asked; a run the history could not take is kept elsewhere
and said in one line. The CLI and the app only display what comes through.

    events = recorded(launcher.run(job, stop=stop), open_recorder(), out=lambda run_id: path)
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

from ctxscope.core.events import CellFinished, JobEvent, JobResult, SweepStarted
from ctxscope.core.results import RunResult
from ctxscope.store.recorder import RunRecorder

if TYPE_CHECKING:  # the launchers' module reaches torch (lazily) through the jobs
    from ctxscope.core.jobs.launch import JobRun


@dataclass(frozen=True, slots=True)
class RunKept:
    """Follows a run's :class:`~ctxscope.core.events.CellFinished`: where it was kept.

    ``stored``: the whole run is in the history; ``file``: the run file asked for
    (``out``), when written; ``problems``: one line each for what was not kept where
    asked, and where it is instead."""

    result: RunResult
    stored: bool
    file: Path | None
    problems: tuple[str, ...]


Recorded = Generator[Union[JobEvent, RunKept], None, JobResult]
#: Where a run's file goes, by run id (``None``: no file asked for).
OutPath = Callable[[str], "Path | None"]


def open_recorder(*, enabled: bool = True, maps_dir: Path | None = None,
                  notice: Callable[[str], None] | None = None) -> Callable[[], RunRecorder]:
    """A function that opens one run's recorder on the history (its own connection,
    in the thread that records). A history that cannot be opened — locked through the
    busy timeout, read-only, full, damaged beyond moving aside — is no reason to stop
    measuring: the recorder keeps the run in a recovery file instead. ``enabled=False``
    (``--no-store``): nothing goes to the history; attention maps go to ``maps_dir``.
    ``notice`` is told the history's notices (a damaged file moved aside, runs added)."""

    def opener() -> RunRecorder:
        if not enabled:
            return RunRecorder(None, maps_dir=maps_dir)
        from ctxscope.core.paths import database_path
        from ctxscope.store.errors import HistoryError
        from ctxscope.store.history import open_history

        path = database_path()
        try:
            store = open_history(path)
        except HistoryError as exc:
            return RunRecorder(None, maps_dir=maps_dir, history=path, problem=str(exc))
        if notice is not None:
            for line in store.notices:
                notice(line)
        return RunRecorder(store, maps_dir=maps_dir)

    return opener


def recorded(events: JobRun, opener: Callable[[], RunRecorder], *, out: OutPath | None = None,
             last_resort: Callable[[RunResult], str] | None = None) -> Recorded:
    """``events``, every one passed on after it is recorded, and a :class:`RunKept`
    after each finished run. A stream that raises or is closed mid-run marks the run
    failed, keeps its points in its file too, and lets the error through.

    ``last_resort(run)``: where a run goes when the history did not take it and no
    file can be written anywhere (the CLI prints its JSON); it returns the words for it."""
    recorder: RunRecorder | None = None
    try:
        while True:
            try:
                event = next(events)
            except StopIteration as done:
                result: JobResult = done.value
                return result
            if isinstance(event, SweepStarted):
                recorder = opener()
                recorder.record(event)  # the history first, then the display
            elif isinstance(event, CellFinished) and recorder is not None:
                done_recorder, recorder = recorder, None
                yield event
                yield _finish(done_recorder, event.result, out, last_resort)
                continue
            elif recorder is not None:
                recorder.record(event)
            yield event
    except BaseException:
        if recorder is not None:
            _fail(recorder, out)
        raise
    finally:
        events.close()


def _finish(recorder: RunRecorder, result: RunResult, out: OutPath | None,
            last_resort: Callable[[RunResult], str] | None) -> RunKept:
    try:
        recorder.finish(result)
    finally:
        _close(recorder)
    problems: list[str] = []
    target = out(result.id) if out is not None else None
    written = target if target is not None and keep_run_file(result, target, problems) else None
    problems += recorder.problems
    if recorder.history is not None and not recorder.stored:
        problems.append(not_stored_line(result, recorder, written, last_resort))
    return RunKept(result, recorder.stored, written, tuple(problems))


def _fail(recorder: RunRecorder, out: OutPath | None) -> None:
    """After an unexpected error, a close or a second Ctrl-C: the run is marked failed
    and what was measured is kept in its file too (the error itself says the rest)."""
    try:
        partial = recorder.fail()
        target = out(partial.id) if partial is not None and out is not None else None
        if partial is not None and target is not None:
            keep_run_file(partial, target, [])
    finally:
        _close(recorder)


def _close(recorder: RunRecorder) -> None:
    if recorder.store is not None:
        recorder.store.close()
        recorder.store = None


def keep_run_file(run: RunResult, path: Path, problems: list[str]) -> bool:
    """Write ``run`` to ``path``; on failure remove the partial file, add one line to
    ``problems`` and return False: a full disk must not cost the other outputs."""
    from ctxscope.core.serialize import write_run
    from ctxscope.store.errors import file_problem

    try:
        write_run(run, path)
        return True
    except OSError as exc:
        try:
            path.with_name(path.name + ".part").unlink(missing_ok=True)
        except OSError:
            pass
        problems.append(f"--out {file_problem(exc, path)}")
        return False


def not_stored_line(run: RunResult, recorder: RunRecorder, written: Path | None,
                    last_resort: Callable[[RunResult], str] | None = None) -> str:
    """One line for a run the history did not take: why, and where every point is
    instead (the recovery file, the run's file, a file in the temp folder, or what
    ``last_resort`` did with it)."""
    why = recorder.problem or "the run history could not be written"
    n = len(run.points)
    if recorder.kept_in is not None:
        where = f"all {n} points are in {recorder.kept_in}, added to the history the next time ctxscope opens it"
    elif written is not None:
        where = f"all {n} points are in {written} (later: ctxscope runs import {written})"
    else:
        fallback = Path(tempfile.gettempdir()) / f"ctxscope-run-{run.id}.json"
        if keep_run_file(run, fallback, []):
            where = f"all {n} points are in {fallback} (later: ctxscope runs import {fallback})"
        elif last_resort is not None:
            where = last_resort(run)
        else:
            where = f"no file could be written anywhere: its {n} points are only in this process"
    return f"{why}; run {run.id} is not in the history: {where}"


def json_on_stdout(run: RunResult) -> str:
    """The CLI's last resort: the run's JSON on stdout."""
    from ctxscope.core.serialize import dumps_run

    sys.stdout.write(dumps_run(run) + "\n")
    return f"no file could be written, so the run's JSON ({len(run.points)} points) is on stdout above"
