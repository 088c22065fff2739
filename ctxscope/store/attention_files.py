"""Where attention maps live on disk: the history's data dir, and beside exported run files.

Every path built from a run id is checked first: the id must be a plain file name
(:mod:`ctxscope.store.ids`) and the file must land in the folder it is meant for, so
no id (a tampered database, a hostile run file) can reach a file elsewhere."""

from __future__ import annotations

import shutil
from pathlib import Path

from ctxscope.core.attention.storage import arrays_of, attention_file_name, save
from ctxscope.core.errors import CtxscopeError
from ctxscope.core.events import AttentionResult
from ctxscope.core.paths import data_dir
from ctxscope.store.errors import file_problem
from ctxscope.store.ids import check_run_id


def _inside(folder: Path, run_id: str) -> Path:
    """``folder/<id>.attention.npz``, refused unless it resolves inside ``folder``."""
    path = folder / attention_file_name(check_run_id(run_id))
    if path.parent.resolve() != folder.resolve():
        raise CtxscopeError(f"{path}: outside {folder}, not touched")
    return path


def store_path(run_id: str, root: Path | None = None) -> Path:
    """The .npz of a stored run (may not exist: runs without attention have none);
    ``root`` is the history's folder (default: the data dir)."""
    return _inside((root or data_dir()) / "attention", run_id)


def maps_path(run_id: str, beside: Path | None = None) -> Path:
    """Where a run's maps are: in ``beside`` (the folder of its run file) when given,
    else in the history's data dir."""
    return _inside(beside, run_id) if beside is not None else store_path(run_id)


class AttentionWriter:
    """Writes each length's maps to every target as it arrives. A target that fails
    (full disk, read-only folder) is dropped with a one-line ``problems`` entry: maps
    are worth keeping, never worth stopping a sweep for."""

    def __init__(self, run_id: str, *, store_enabled: bool, out_dir: Path | None,
                 store_root: Path | None = None) -> None:
        self.targets: list[Path] = []
        self.problems: list[str] = []
        if store_enabled:
            self.targets.append(store_path(run_id, store_root))
        if out_dir is not None:
            self.targets.append(maps_path(run_id, out_dir))

    def add(self, result: AttentionResult) -> None:
        if result.capture is None:
            return
        arrays = None
        source: Path | None = None
        for path in list(self.targets):
            part = path.with_name(path.name + ".part")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if source is None:
                    arrays = arrays if arrays is not None else arrays_of(result.capture, result.tokens)
                    save(path, arrays)  # compressed once...
                    source = path
                else:  # ...and copied: every target holds this run's maps alone
                    shutil.copyfile(source, part)
                    part.replace(path)
            except OSError as exc:
                part.unlink(missing_ok=True)
                self.targets.remove(path)
                self.problems.append(f"attention maps not written: {file_problem(exc, path)}")


def copy_beside(run_id: str, json_path: Path) -> Path | None:
    """Export: put a stored run's maps next to its exported JSON, where it points."""
    source = store_path(run_id)
    if not source.exists():
        return None
    target = maps_path(run_id, json_path.parent)
    shutil.copyfile(source, target)
    return target
