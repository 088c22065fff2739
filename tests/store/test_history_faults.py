"""Faults of the run history and the data directory, made real: a second process holding
the write lock, small tmpfs filesystems that fill up, read-only bind mounts, truncated and
overwritten database files, killed processes, a reused process id. Whatever happens, no
measured point is lost, the error is one line (exit 2, never "internal error"), and the
commands that only read keep working."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from ctxscope.cli import main
from ctxscope.core.errors import CtxscopeError
from ctxscope.core.results import RunResult
from ctxscope.core.serialize import header_to_dict, load_run, point_to_dict, write_run
from ctxscope.core.jobs.sweep import run_sweep
from ctxscope.store import RunStore
from ctxscope.store.schema import USER_VERSION
from tests.conftest import drain, fast_config

REPO = Path(__file__).resolve().parents[2]
FAST = ["--device", "cpu", "--min-repeats", "2", "--max-repeats", "2", "--budget", "0", "--quiet", "--threads", "1"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err and "internal error" not in err, err
    return [line for line in err.splitlines() if line.startswith("ctxscope: error:")]


@pytest.fixture(scope="module")
def run(loaded_llama) -> RunResult:
    """A real 4-point run (prefill and decode at 16 and 32 tokens)."""
    return drain(run_sweep(loaded_llama, fast_config((16, 32))))[1]


def copies(run: RunResult, count: int, points_each: int = 20) -> list[RunResult]:
    points = (run.points * (points_each // len(run.points) + 1))[:points_each]
    return [replace(run, header=replace(run.header, id=f"run-{i:03d}"), points=points) for i in range(count)]


def build_history(path: Path, runs: list[RunResult]) -> None:
    with RunStore(path) as store:
        for r in runs:
            store.save_run(r)


def damage(path: Path, how: str) -> bytes:
    """Truncate the file to half, or overwrite 4 random 4 KiB pages in its middle (the
    header page intact); returns the damaged bytes."""
    size = path.stat().st_size
    if how == "truncated":
        os.truncate(path, size // 2)
    else:
        rng = random.Random(7)
        pages = size // 4096
        with open(path, "r+b") as f:
            for page in rng.sample(range(pages // 4, 3 * pages // 4), 4):
                f.seek(page * 4096)
                f.write(rng.randbytes(4096))
    return path.read_bytes()


# -- real filesystems ---------------------------------------------------------------------
@pytest.fixture
def mounts() -> Iterator[SimpleNamespace]:
    """Small tmpfs filesystems and read-only bind mounts, unmounted afterwards."""
    mounted: list[Path] = []

    def mount(argv: list[str], path: Path) -> None:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs or a read-only bind mount needs root")
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount here ({proc.stderr.strip()})")
        mounted.append(path)

    def tmpfs(path: Path, size: str = "2m") -> Path:
        path.mkdir(parents=True, exist_ok=True)
        mount(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], path)
        return path

    def read_only(path: Path) -> Path:
        mount(["mount", "--bind", str(path), str(path)], path)
        proc = subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot remount read-only here ({proc.stderr.strip()})")
        return path

    def grow(path: Path, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)

    yield SimpleNamespace(tmpfs=tmpfs, read_only=read_only, grow=grow)
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> None:
    """Fill the filesystem of ``folder`` until about ``leave`` bytes are free."""
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
                if free <= leave:
                    break
                f.write(b"\0" * min(65536, max(4096, free - leave)))
                f.flush()
        except OSError:
            pass


# -- 1. locked by another process ---------------------------------------------------------
HOLD_LOCK = ("import sqlite3, sys\n"
             "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
             "c.execute('BEGIN IMMEDIATE')\n"
             "print('locked', flush=True)\n"
             "sys.stdin.readline()\n"
             "c.execute('ROLLBACK')\n")


@contextmanager
def held_lock(db: Path) -> Iterator[subprocess.Popen]:
    """Another process holding the history's write lock until the block ends (or
    ``release`` is written to it)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(db)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        release(proc)


def release(proc: subprocess.Popen) -> None:
    if proc.returncode is None:
        proc.communicate("\n", timeout=30)  # the holder rolls back and exits; the pipes are closed


def test_a_locked_history_costs_no_point(capsys, monkeypatch, tiny_config_files, ctxscope_home: Path) -> None:
    """The issue's 256-point sweep died at point 115 with 'database is locked': now every
    point is kept in a recovery file, the sweep says so in one line (exit 2), and the
    next start adds the run to the history."""
    monkeypatch.setenv("CTXSCOPE_HISTORY_WAIT", "0.3")
    db = ctxscope_home / "runs.sqlite3"
    RunStore(db).close()
    with held_lock(db):
        code, out, err = run_cli(capsys, "sweep", str(tiny_config_files["llama"]), "--lengths", "16,32", *FAST)
        assert code == 2
        [line] = error_lines(err)
        [pending] = (ctxscope_home / "pending").glob("*.json")
        kept = load_run(pending)
        assert "locked by another process" in line and str(pending) in line and "all 4 points" in line
        assert kept.status == "complete" and len(kept.points) == 4 and kept.id in out
        monkeypatch.delenv("CTXSCOPE_HISTORY_WAIT")  # readers never wait the full 10 s for a writer
        started = time.monotonic()
        code, listing, _ = run_cli(capsys, "runs", "list", "--format", "json")
        assert code == 0 and json.loads(listing) == [] and pending.exists() and time.monotonic() - started < 3
    code, listing, err = run_cli(capsys, "runs", "list", "--format", "json")
    [row] = json.loads(listing)
    assert code == 0 and row["id"] == kept.id and row["status"] == "complete" and row["points_total"] == 4
    assert not pending.exists() and f"added 1 run(s) kept while the history was unavailable: {kept.id}" in err
    with RunStore(db, readonly=True) as store:
        assert store.get_run(kept.id).points == kept.points


def test_a_lock_taken_mid_sweep_and_released_loses_nothing(capsys, monkeypatch, tiny_config_files,
                                                          ctxscope_home: Path) -> None:
    """Another process takes the lock after two points and lets go once the sweep has
    fallen back to its recovery file: the sweep catches up and stores every point."""
    monkeypatch.setenv("CTXSCOPE_HISTORY_WAIT", "0.3")
    db = ctxscope_home / "runs.sqlite3"
    RunStore(db).close()
    seen: dict[str, bool] = {}

    def interfere() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with sqlite3.connect(db) as conn:
                if conn.execute("SELECT COUNT(*) FROM points").fetchone()[0] >= 2:
                    break
            time.sleep(0.01)
        with held_lock(db) as proc:
            while time.monotonic() < deadline and not list((ctxscope_home / "pending").glob("*.json")):
                time.sleep(0.01)
            seen["pending"] = bool(list((ctxscope_home / "pending").glob("*.json")))
            release(proc)

    thread = threading.Thread(target=interfere)
    thread.start()
    try:
        code, out, err = run_cli(capsys, "sweep", str(tiny_config_files["llama"]), "--lengths", "16:160:+16",
                                 "--mode", "prefill", *FAST)
    finally:
        thread.join(timeout=180)
    assert seen.get("pending"), "the lock was never felt: the sweep finished first"
    assert code == 0 and error_lines(err) == []
    with RunStore(db, readonly=True) as store:
        [summary] = store.list_runs()
        run = store.get_run(summary.id)
    assert run.status == "complete" and [p.length for p in run.points] == list(range(16, 161, 16))
    assert not list((ctxscope_home / "pending").glob("*.json"))


# -- 2. full disk -------------------------------------------------------------------------
def test_a_full_data_directory_mid_sweep(capsys, monkeypatch, mounts, tmp_path: Path, tiny_config_files) -> None:
    home = mounts.tmpfs(tmp_path / "home", "2m")
    monkeypatch.setenv("CTXSCOPE_HOME", str(home))
    db = home / "runs.sqlite3"
    RunStore(db).close()
    fill(home, leave=96 * 1024)  # the -shm (32 KiB) and a few points' pages fit, not all of them
    out = tmp_path / "run.json"
    code, stdout, err = run_cli(capsys, "sweep", str(tiny_config_files["llama"]), "--lengths", "16:512:+16",
                                "--mode", "prefill", "--out", str(out), *FAST)
    assert code == 2
    [line] = error_lines(err)
    assert f"no space left for the run history {db}" in line and f"free on {home}" in line and str(out) in line
    written = load_run(out)
    assert written.status == "complete" and len(written.points) == 32 and written.id in stdout
    with RunStore(db, readonly=True) as store:  # every point written before the disk filled still reads
        stored = store.get_run(written.id)
    assert 0 < len(stored.points) < 32 and stored.points == written.points[:len(stored.points)]
    code, listing, _ = run_cli(capsys, "runs", "list", "--format", "json")
    assert code == 0 and [r["id"] for r in json.loads(listing)] == [written.id]


def test_out_on_a_full_filesystem(capsys, mounts, tmp_path: Path, tiny_config_files, ctxscope_home: Path) -> None:
    """No run.json.part left behind, the CSV still written, the run id printed, one line."""
    full = mounts.tmpfs(tmp_path / "full", "1m")
    fill(full)
    out, csv = full / "run.json", tmp_path / "points.csv"
    code, stdout, err = run_cli(capsys, "sweep", str(tiny_config_files["llama"]), "--lengths", "16,32",
                                "--out", str(out), "--csv", str(csv), *FAST)
    assert code == 2
    [line] = error_lines(err)
    assert line.startswith(f"ctxscope: error: --out {out}: no space left on the device") and f"free on {full}" in line
    assert not out.exists() and not list(full.glob("*.part"))
    assert csv.read_text(encoding="utf-8").count("\n") == 5
    with RunStore(ctxscope_home / "runs.sqlite3", readonly=True) as store:
        [summary] = store.list_runs()
    assert summary.points_total == 4 and f"stored as {summary.id}" in stdout


# -- 3. damaged history -------------------------------------------------------------------
@pytest.mark.parametrize("how", ["truncated", "pages"])
def test_a_damaged_history_is_moved_aside_and_what_reads_comes_back(capsys, how: str, run: RunResult,
                                                                   ctxscope_home: Path) -> None:
    db = ctxscope_home / "runs.sqlite3"
    build_history(db, copies(run, 40))
    damaged = damage(db, how)
    code, listing, err = run_cli(capsys, "runs", "list", "--format", "json")
    assert code == 0 and error_lines(err) == []
    [aside] = ctxscope_home.glob("runs-damaged-*.sqlite3")
    assert aside.read_bytes() == damaged  # moved, never changed, never deleted
    notes = [line for line in err.splitlines() if line.startswith("ctxscope: note:")]
    assert len(notes) == 2 and f"moved it to {aside}" in notes[0] and "recovered" in notes[1]
    rows = json.loads(listing)
    assert 10 <= len(rows) < 40 if how == "truncated" else 30 <= len(rows) <= 40
    for row in rows[:: len(rows) // 5]:  # what came back is whole, valid runs
        code, shown, _ = run_cli(capsys, "runs", "show", row["id"], "--format", "json")
        assert code == 0 and json.loads(shown)["id"] == row["id"]
    code, report, _ = run_cli(capsys, "doctor", "--no-qt-probe", "--format", "json")
    kept = {c["name"]: c for c in json.loads(report)}["damaged histories"]
    assert aside.name in kept["detail"] and "runs recover" in kept["fix"]


def test_a_sweep_never_writes_into_a_damaged_history(capsys, run: RunResult, tiny_config_files,
                                                     ctxscope_home: Path) -> None:
    db = ctxscope_home / "runs.sqlite3"
    build_history(db, copies(run, 40))
    damaged = damage(db, "pages")
    code, out, err = run_cli(capsys, "sweep", str(tiny_config_files["llama"]), "--lengths", "16", *FAST)
    assert code == 0 and error_lines(err) == []
    [aside] = ctxscope_home.glob("runs-damaged-*.sqlite3")
    assert aside.read_bytes() == damaged
    with RunStore(db, readonly=True) as store:
        ids = [s.id for s in store.list_runs()]
    assert len(ids) > 30 and any(run_id in out for run_id in ids if not run_id.startswith("run-"))


def test_doctor_reports_a_damaged_history_without_touching_it(capsys, run: RunResult, ctxscope_home: Path) -> None:
    db = ctxscope_home / "runs.sqlite3"
    build_history(db, copies(run, 40))
    damaged = damage(db, "pages")
    code, report, err = run_cli(capsys, "doctor", "--no-qt-probe", "--format", "json")
    history = {c["name"]: c for c in json.loads(report)}["run history"]
    assert code == 1 and history["status"] == "fail" and "damaged" in history["detail"]
    assert db.read_bytes() == damaged and not list(ctxscope_home.glob("runs-damaged-*"))


def test_runs_recover_merges_any_history_file(capsys, run: RunResult, tmp_path: Path, ctxscope_home: Path) -> None:
    other = tmp_path / "elsewhere.sqlite3"
    build_history(other, copies(run, 5, points_each=4))
    code, _, err = run_cli(capsys, "runs", "recover", str(other))
    assert code == 0 and f"recovered 5 run(s) with 20 point(s) from {other}" in err
    code, _, err = run_cli(capsys, "runs", "recover", str(other))  # twice: nothing doubled
    assert code == 0 and "recovered 0 run(s)" in err and "5 of the 5 readable were in the history already" in err
    assert len(json.loads(run_cli(capsys, "runs", "list", "--format", "json")[1])) == 5
    code, _, err = run_cli(capsys, "runs", "recover", str(tmp_path / "missing.sqlite3"))
    assert code == 2 and error_lines(err) == [f"ctxscope: error: {tmp_path / 'missing.sqlite3'}: no such history file"]


# -- 4. data directory unusable -----------------------------------------------------------
def test_a_data_directory_that_cannot_be_created(capsys, monkeypatch, mounts, tmp_path: Path,
                                                 tiny_config_files) -> None:
    parent = tmp_path / "locked-parent"
    parent.mkdir()
    mounts.read_only(parent)
    home = parent / "ctxscope"
    monkeypatch.setenv("CTXSCOPE_HOME", str(home))
    code, out, err = run_cli(capsys, "runs", "list")
    assert code == 0 and "No runs yet" in out and f"the data directory {home} cannot be created" in err
    code, report, err = run_cli(capsys, "doctor", "--no-qt-probe", "--format", "json")
    checks = {c["name"]: c for c in json.loads(report)}
    assert "OSError" not in err and "cannot be created" in checks["data directory"]["detail"]
    out_file = tmp_path / "run.json"
    code, out, err = run_cli(capsys, "sweep", str(tiny_config_files["llama"]), "--lengths", "16",
                             "--out", str(out_file), *FAST)
    assert code == 2
    [line] = error_lines(err)
    assert "cannot be created" in line and f"all 2 points are in {out_file}" in line
    assert len(load_run(out_file).points) == 2


def test_without_out_a_run_with_no_usable_history_goes_to_a_file_anyway(capsys, monkeypatch, mounts,
                                                                         tmp_path: Path, tiny_config_files) -> None:
    read_only = tmp_path / "ro"
    read_only.mkdir()
    mounts.read_only(read_only)
    monkeypatch.setenv("CTXSCOPE_HOME", str(read_only / "home"))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the run goes when nothing else can hold it
    code, out, err = run_cli(capsys, "sweep", str(tiny_config_files["llama"]), "--lengths", "16", *FAST)
    assert code == 2
    [line] = error_lines(err)
    [kept] = tmp_path.glob("ctxscope-run-*.json")
    assert f"all 2 points are in {kept}" in line and len(load_run(kept).points) == 2


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_reading_commands_work_in_an_unwritable_data_directory(capsys, monkeypatch, mounts, fault: str,
                                                               run: RunResult, tmp_path: Path) -> None:
    home = tmp_path / "home" if fault == "read-only" else mounts.tmpfs(tmp_path / "home", "2m")
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("CTXSCOPE_HOME", str(home))
    build_history(home / "runs.sqlite3", copies(run, 3, points_each=4))
    if fault == "read-only":
        mounts.read_only(home)
    else:
        fill(home)
    code, listing, err = run_cli(capsys, "runs", "list", "--format", "json")
    assert code == 0 and [r["id"] for r in json.loads(listing)] == ["run-000", "run-001", "run-002"]
    assert run_cli(capsys, "runs", "show", "run-001")[0] == 0
    report = tmp_path / "r.md"
    code, _, err = run_cli(capsys, "report", "run-002", "--out", str(report), "--format", "md")
    assert code == 0 and str(run.header.model.source) in report.read_text(encoding="utf-8")
    assert "not a usable run database" not in err


# -- 5. imports are all or nothing --------------------------------------------------------
def big_run_file(run: RunResult, folder: Path, points: int = 10_000) -> Path:
    path = folder / "big.json"
    write_run(replace(run, points=(run.points * (points // len(run.points) + 1))[:points]), path)
    return path


def test_an_import_that_runs_out_of_space_stores_nothing(capsys, monkeypatch, mounts, run: RunResult,
                                                         tmp_path: Path) -> None:
    big = big_run_file(run, tmp_path)
    home = mounts.tmpfs(tmp_path / "home", "2m")
    monkeypatch.setenv("CTXSCOPE_HOME", str(home))
    code, _, err = run_cli(capsys, "runs", "import", str(big))
    assert code == 2
    [line] = error_lines(err)
    assert f"no space left for the run history {home / 'runs.sqlite3'}" in line
    assert json.loads(run_cli(capsys, "runs", "list", "--format", "json")[1]) == []
    mounts.grow(home, "96m")  # room made: the same import now simply works
    code, _, err = run_cli(capsys, "runs", "import", str(big))
    [row] = json.loads(run_cli(capsys, "runs", "list", "--format", "json")[1])
    assert code == 0 and row["points_total"] == 10_000 and row["id"] == run.id


def test_a_killed_import_leaves_nothing_half_done(capsys, run: RunResult, tmp_path: Path,
                                                  ctxscope_home: Path) -> None:
    big = big_run_file(run, tmp_path)
    wal = ctxscope_home / "runs.sqlite3-wal"
    env = {**os.environ, "CTXSCOPE_HOME": str(ctxscope_home), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "ctxscope", "runs", "import", str(big)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if wal.exists() and wal.stat().st_size > 64 * 1024:  # writing has begun
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.communicate(timeout=60)
    rows = json.loads(run_cli(capsys, "runs", "list", "--format", "json")[1])
    assert rows == [] or [r["points_total"] for r in rows] == [10_000]
    if not rows:
        code, _, err = run_cli(capsys, "runs", "import", str(big))
        assert code == 0, err


# -- 6. nothing outside the data directory ------------------------------------------------
def test_a_hostile_id_in_the_database_touches_no_file(capsys, run: RunResult, ctxscope_home: Path) -> None:
    victim = ctxscope_home.parent / f"victim-{os.getpid()}.attention.npz"
    victim.write_bytes(b"precious")
    hostile = f"../../victim-{os.getpid()}"
    assert (ctxscope_home / "attention" / f"{hostile}.attention.npz").resolve() == victim.resolve()
    db = ctxscope_home / "runs.sqlite3"
    build_history(db, [run])
    with sqlite3.connect(db) as conn:  # another tool wrote this, not ctxscope
        conn.execute("UPDATE runs SET id = ?", (hostile,))
        conn.execute("UPDATE points SET run_id = ?", (hostile,))
    code, _, err = run_cli(capsys, "runs", "show", hostile)
    assert code == 2 and "is damaged in the history" in error_lines(err)[0]
    code, _, err = run_cli(capsys, "runs", "rm", hostile)
    assert code == 0 and "no file was touched" in err
    assert victim.read_bytes() == b"precious"
    from ctxscope.store.attention_files import maps_path, store_path

    for bad in (hostile, "/etc/passwd", "", ".hidden"):
        with pytest.raises(CtxscopeError):
            store_path(bad, ctxscope_home)
        with pytest.raises(CtxscopeError):
            maps_path(bad, ctxscope_home)
    victim.unlink()


# -- 7. stale "running" -------------------------------------------------------------------
RECORD_AND_DIE = ("import os, sys\n"
                  "from ctxscope.core.serialize import load_run\n"
                  "from ctxscope.store import RunStore\n"
                  "run = load_run(sys.argv[2])\n"
                  "store = RunStore(sys.argv[1])\n"
                  "store.create_run(run.header)\n"
                  "store.add_point(run.id, 0, run.points[0])\n"
                  "os._exit(0)  # gone without finishing the run, as if killed\n")


def test_a_killed_run_whose_process_id_was_reused_reads_interrupted(run: RunResult, tmp_path: Path,
                                                                    ctxscope_home: Path) -> None:
    file = tmp_path / "r.json"
    write_run(run, file)
    db = ctxscope_home / "runs.sqlite3"
    subprocess.run([sys.executable, "-c", RECORD_AND_DIE, str(db), str(file)], check=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        with sqlite3.connect(db) as conn:  # the dead recorder's id now belongs to another, live process
            conn.execute("UPDATE runs SET pid = ?", (other.pid,))
        with RunStore(db) as store:
            [summary] = store.list_runs()
            assert summary.status == "interrupted" and store.get_run(run.id).status == "interrupted"
            assert summary.points_text() == "1/4"
    finally:
        other.kill()
        other.wait()
    with RunStore(tmp_path / "live.sqlite3") as store:  # a run this process is still measuring
        store.create_run(run.header)
        assert store.list_runs()[0].status == "running"


V1_SCHEMA = """
CREATE TABLE runs (id TEXT PRIMARY KEY, created TEXT NOT NULL, status TEXT NOT NULL, finished TEXT, pid INTEGER,
    model_source TEXT NOT NULL, architecture TEXT NOT NULL, device TEXT NOT NULL, dtype TEXT NOT NULL,
    attn TEXT NOT NULL, batch_size INTEGER NOT NULL, header_json TEXT NOT NULL, attention_json TEXT);
CREATE TABLE points (run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, seq INTEGER NOT NULL,
    mode TEXT NOT NULL, length INTEGER NOT NULL, status TEXT NOT NULL, point_json TEXT NOT NULL,
    PRIMARY KEY (run_id, seq));
PRAGMA user_version=1;
"""


def test_a_version_1_history_still_opens_and_is_migrated(run: RunResult, tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite3"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with sqlite3.connect(db) as conn:
        conn.executescript(V1_SCHEMA)
        s = run.header.settings
        conn.execute("INSERT INTO runs VALUES (?, ?, 'running', NULL, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                     (run.id, run.header.created, dead.pid, run.header.model.source, run.header.model.architecture,
                      s.device, s.dtype, s.attn_implementation, s.batch_size, json.dumps(header_to_dict(run.header))))
        for seq, point in enumerate(run.points):
            conn.execute("INSERT INTO points VALUES (?, ?, ?, ?, ?, ?)", (run.id, seq, point.mode, point.length,
                                                                           point.status,
                                                                           json.dumps(point_to_dict(point))))
    with RunStore(db, readonly=True) as store:  # read as it is
        assert store.get_run(run.id).points == run.points and store.list_runs()[0].status == "interrupted"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    with RunStore(db) as store:  # migrated by the first writer
        assert store.get_run(run.id).points == run.points
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == USER_VERSION
        assert "pid_started" in [r[1] for r in conn.execute("PRAGMA table_info(runs)")]


# -- 8. points done of planned ------------------------------------------------------------
def test_runs_list_shows_points_done_of_planned(capsys, run: RunResult, ctxscope_home: Path) -> None:
    assert len(run.header.settings.lengths) * len(run.header.settings.modes) == 4
    cancelled = replace(run, status="cancelled", points=run.points[:3])
    build_history(ctxscope_home / "runs.sqlite3", [cancelled])
    code, out, _ = run_cli(capsys, "runs", "list")
    assert code == 0 and "3/4" in out and "3/3" not in out
    [row] = json.loads(run_cli(capsys, "runs", "list", "--format", "json")[1])
    assert (row["points_total"], row["points_planned"]) == (3, 4)
