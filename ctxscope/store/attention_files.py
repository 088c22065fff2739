"""Where attention maps live on disk: the history's data dir, and beside exported run files."""

from __future__ import annotations

import shutil
from pathlib import Path

from ctxscope.core.attention.storage import arrays_of, attention_file_name, save
from ctxscope.core.events import AttentionResult
from ctxscope.core.paths import data_dir


def store_path(run_id: str, root: Path | None = None) -> Path:
    """The .npz of a stored run (may not exist: runs without attention have none);
    ``root`` is the history's folder (default: the data dir)."""
    return (root or data_dir()) / "attention" / attention_file_name(run_id)


def maps_path(run_id: str, beside: Path | None = None) -> Path:
    """Where a run's maps are: in ``beside`` (the folder of its run file) when given,
    else in the history's data dir."""
    return beside / attention_file_name(run_id) if beside is not None else store_path(run_id)


class AttentionWriter:
    def __init__(self, run_id: str, *, store_enabled: bool, out_dir: Path | None) -> None:
        self.targets: list[Path] = []
        if store_enabled:
            self.targets.append(store_path(run_id))
        if out_dir is not None:
            self.targets.append(out_dir / attention_file_name(run_id))

    def add(self, result: AttentionResult) -> None:
        if result.capture is None:
            return
        if not self.targets:
            return
        first, *others = self.targets
        first.parent.mkdir(parents=True, exist_ok=True)
        save(first, arrays_of(result.capture, result.tokens))  # compressed once...
        for path in others:  # ...and copied: every target holds this run's maps alone
            path.parent.mkdir(parents=True, exist_ok=True)
            part = path.with_name(path.name + ".part")
            shutil.copyfile(first, part)
            part.replace(path)


def copy_beside(run_id: str, json_path: Path) -> Path | None:
    """Export: put a stored run's maps next to its exported JSON, where it points."""
    source = store_path(run_id)
    if not source.exists():
        return None
    target = json_path.parent / attention_file_name(run_id)
    shutil.copyfile(source, target)
    return target
