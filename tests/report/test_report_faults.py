"""Reports and run files under hostile or unlucky input: extreme samples, unknown
enumerated values, large files, `$` in model paths, damaged or oversized attention
archives, and a report that fails after a sweep. Real files throughout; bad input is
one line on stderr with exit code 2."""

from __future__ import annotations

import json
import math
import typing
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from ctxscope.cli import main
from ctxscope.core.errors import RunFileError
from ctxscope.core.serialize import load_run, run_to_dict, write_run
from ctxscope.core.stats import LatencyStats
from ctxscope.report.markdown import render_markdown
from tests.report.test_reports import make_run


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> bool:
    return err.count("\n") == 1 and "Traceback" not in err and "internal error" not in err


# -- statistics on extreme samples (issue 16, item 13) ------------------------------------

@pytest.mark.parametrize("samples", [[1e308] * 5, [-1.7e308, 1.7e308, 1.0], [1e-300, 1e300, 5.0],
                                     [1.7e308, 1.7e308], [5e-324, 5e-324, 1e-320]])
def test_statistics_of_extreme_samples_are_warning_free(samples: list[float]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow RuntimeWarning used to leak here
        stats = LatencyStats.from_samples(samples)
    ordered = sorted(samples)
    assert ordered[0] <= stats.p10 <= stats.median <= stats.p90 <= ordered[-1]
    assert math.isfinite(stats.mean) and ordered[0] <= stats.mean <= ordered[-1]
    assert stats.std >= 0 and stats.iqr >= 0


def test_a_run_file_with_extreme_samples_loads_and_reports(tmp_path: Path, capsys) -> None:
    data = run_to_dict(make_run("x1"))
    data["points"][0]["latency_ms"]["samples"] = [1e308, 1e308, 1.7e308]
    data["points"][1]["latency_ms"]["samples"] = [10**400]  # an integer no float holds
    path = tmp_path / "x.json"
    path.write_text(json.dumps(data))
    code, _, err = run_cli(capsys, "report", str(path), "--out", str(tmp_path / "x.md"))
    # refused as the file is parsed (issue 26: bounded integers), so the error names the
    # file and the integer rather than the field
    assert code == 2 and one_line_error(err) and "x.json" in err and "out of range" in err
    data["points"][1]["latency_ms"]["samples"] = [1.0]
    path.write_text(json.dumps(data))
    code, _, err = run_cli(capsys, "report", str(path), "--out", str(tmp_path / "x.md"))
    assert code == 0, err
    assert load_run(path).points[0].latency_ms.mean == pytest.approx(1.2333333e308)


# -- enumerated fields are validated; Markdown escapes everything (issue 16, item 11) -----

@pytest.mark.parametrize("where, value", [
    (("points", 0, "mode"), "**<script>alert(1)</script>**"),
    (("points", 0, "status"), "ok<img src=x>"),
    (("settings", "modes", 0), "<b>prefill</b>"),
    (("status",), "complete | evil"),
    (("attention",), [{"length": 16, "layer": 0, "status": "<script>"}]),
])
def test_unknown_enumerated_values_are_refused(tmp_path: Path, capsys, where: tuple, value: object) -> None:
    data = run_to_dict(make_run("e1"))
    target = data
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    path = tmp_path / "e.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RunFileError, match="is not one of"):
        load_run(path)
    code, out, err = run_cli(capsys, "compare", str(path), str(path), "--format", "md")
    assert code == 2 and out == "" and one_line_error(err) and "is not one of" in err


def test_markdown_escapes_every_string() -> None:
    hostile = "<script>x</script>|*_"
    run = make_run("m1")
    bad = replace(run, points=tuple(replace(p, mode=hostile, status=hostile) for p in run.points[:2])
                  + run.points[2:])
    md = render_markdown([bad, make_run("m2", attn="eager")])
    assert "<script>" not in md and "**<" not in md
    assert "&lt;script&gt;" in md


# -- large run files load in seconds (issue 16, item 9) ---------------------------------

def test_loading_resolves_type_hints_once_per_record_class(tmp_path: Path, monkeypatch) -> None:
    import ctxscope.core.serialize as serialize

    serialize._schema_of.cache_clear()
    calls: list[object] = []
    real = typing.get_type_hints
    monkeypatch.setattr(typing, "get_type_hints", lambda cls, *a, **k: calls.append(cls) or real(cls, *a, **k))
    run = make_run("big", lengths=tuple(range(64, 64 + 64 * 500, 64)))  # 1,000 points
    write_run(run, tmp_path / "big.json")
    loaded = load_run(tmp_path / "big.json")
    assert len(loaded.points) == 1000 and loaded.points[-1].latency_ms == run.points[-1].latency_ms
    assert len(calls) <= 5  # ModelInfo, Settings, Environment, MemoryStats, Point: was 2 per point


# -- `$` in a model path, and a report that fails after the sweep (issue 16, item 2) -----

FAST = ("--device", "cpu", "--lengths", "16,32", "--mode", "prefill", "--min-repeats", "2", "--max-repeats", "2",
        "--budget", "0", "--quiet")


@pytest.fixture
def dollar_model(tiny_config_files, tmp_path: Path) -> Path:
    folder = tmp_path / "ckpt_$step^$"
    folder.mkdir()
    (folder / "config.json").write_text(tiny_config_files["llama"].read_text())
    return folder / "config.json"


def test_a_dollar_path_is_drawn_as_plain_text(capsys, dollar_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    code, _, err = run_cli(capsys, "sweep", str(dollar_model), *FAST, "--out", str(out),
                           "--html", str(tmp_path / "r.html"), "--md", str(tmp_path / "r.md"))
    assert code == 0, err
    html = (tmp_path / "r.html").read_text()
    assert ">" + str(dollar_model) + "</text>" in html  # the legend holds the path as written
    assert str(dollar_model).replace("$", "\\$").replace("_", "\\_") in (tmp_path / "r.md").read_text()


def test_a_failing_report_costs_nothing_measured(capsys, dollar_model: Path, tmp_path: Path, monkeypatch) -> None:
    import ctxscope.report.html as html_report

    def broken(*args, **kwargs):
        raise ValueError("Expected end of text, found '$'\n  (at char 5), (line:1, col:6)")

    monkeypatch.setattr(html_report, "render_html", broken)
    out, page, md = tmp_path / "run.json", tmp_path / "r.html", tmp_path / "r.md"
    code, stdout, err = run_cli(capsys, "sweep", str(dollar_model), *FAST, "--out", str(out), "--html", str(page),
                                "--md", str(md), "--csv", str(tmp_path / "r.csv"))
    run = load_run(out)  # --out was written before any report
    assert code == 2 and run.status == "complete" and len(run.points) == 2
    errors = [line for line in err.splitlines() if line.startswith("ctxscope: error:")]
    assert len(errors) == 1 and "Traceback" not in err and "internal error" not in err
    assert f"{page} not written (ValueError: Expected end of text" in errors[0] and run.id in errors[0]
    assert not page.exists() and not (tmp_path / "r.html.part").exists()
    assert md.read_text().startswith("### ctxscope") and (tmp_path / "r.csv").exists()  # the others still written
    assert run.id in stdout  # the summary names the stored run
    assert f"unaffected ({run.id}, {out})" in errors[0]
    listed = json.loads(run_cli(capsys, "runs", "list", "--format", "json")[1])
    assert [r["id"] for r in listed] == [run.id]


def test_a_failing_report_never_points_at_an_out_file_that_was_not_written(capsys, dollar_model: Path,
                                                                           tmp_path: Path, monkeypatch) -> None:
    import ctxscope.report.html as html_report

    import ctxscope.core.serialize as serialize

    def disk_full(run, path) -> None:
        raise OSError(28, "No space left on device")  # --out cannot be written once the sweep is done

    monkeypatch.setattr(html_report, "render_html", lambda *a, **k: (_ for _ in ()).throw(ValueError("broken")))
    monkeypatch.setattr(serialize, "write_run", disk_full)
    out, page = tmp_path / "run.json", tmp_path / "r.html"
    code, stdout, err = run_cli(capsys, "sweep", str(dollar_model), *FAST, "--out", str(out), "--html", str(page))
    assert code == 2 and not out.exists() and f"--out {out}" in err  # said in its own line
    report_line = next(line for line in err.splitlines() if f"{page} not written" in line)
    assert str(out) not in report_line.split("unaffected", 1)[1]  # only where the run really is
    run_id = json.loads(run_cli(capsys, "runs", "list", "--format", "json")[1])[0]["id"]
    assert f"unaffected ({run_id})" in report_line


# -- attention archives: bombs and damage (issue 16, item 4) ------------------------------

TILES = 8


def _run_with_attention(run_id: str = "att1") -> object:
    run = make_run(run_id)
    entries = tuple({"length": 1024, "layer": layer, "tiles": TILES, "status": "ok", "array": f"L1024_layer{layer}",
                     "map_file_or_inline": f"{run_id}.attention.npz", "stats": {"entropy": [0.5] * 12}}
                    for layer in (0, 11))
    return replace(run, attention=entries)


def _good_arrays() -> dict:
    import numpy as np

    maps = np.full((12, TILES, TILES), 1 / TILES, dtype=np.float32)
    edges = np.arange(0, 1025, 1024 // TILES, dtype=np.int64)
    return {"L1024_layer0": maps, "L1024_layer0_edges": edges, "L1024_layer11": maps, "L1024_layer11_edges": edges}


def _write_bomb(path: Path, member: str, gib: float) -> None:
    """A real zip bomb: a valid .npy header, then ``gib`` GiB of zeros, deflated."""
    import zipfile

    import numpy as np

    heads = int(gib * 1024**3 // (4 * 4096 * 4096))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(f"{member}.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (heads, 4096, 4096)})
            chunk = bytes(64 * 1024**2)
            for _ in range(heads * 4096 * 4096 * 4 // len(chunk)):
                fh.write(chunk)


def test_a_zip_bomb_is_not_unpacked(tmp_path: Path, monkeypatch) -> None:
    import time
    import tracemalloc

    from ctxscope.core.attention.storage import load
    from ctxscope.report.html import render_html

    bomb = tmp_path / "att1.attention.npz"
    _write_bomb(bomb, "L1024_layer0", 0.125)  # twice the 64 MiB that either reader would need to inflate it
    assert bomb.stat().st_size < 1024**2  # 128 MiB in a fraction of one
    run = _run_with_attention()
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        html = render_html([run], maps={run.id: bomb})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024**2 and time.perf_counter() - t0 < 30  # the 128 MiB member was never inflated
    assert "L1024_layer0 unpacks to 128.0 MiB, more than the 0.1 MiB its declared shape allows: not read" in html
    assert "data:image/png" not in html
    # The app's loader (no declared shapes) caps each member too.
    import ctxscope.core.attention.storage as storage

    monkeypatch.setattr(storage, "MAX_MEMBER_BYTES", 64 * 1024**2)
    assert load(bomb) == {}


@pytest.mark.parametrize("damage", ["truncated", "bad_crc", "garbage"])
def test_a_damaged_archive_is_a_note_in_the_report(tmp_path: Path, capsys, damage: str) -> None:
    from ctxscope.core.attention.storage import load, save

    run = _run_with_attention()
    write_run(run, tmp_path / "run.json")
    npz = tmp_path / "att1.attention.npz"
    save(npz, _good_arrays())
    data = bytearray(npz.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "bad_crc":
        start = data.index(b"L1024_layer0.npy") + len("L1024_layer0.npy") + 40  # inside the deflated data
        for i in range(start, start + 16):
            data[i] ^= 0xFF
    else:
        data = bytearray(b"PK\x03\x04" + bytes(range(256)) * 8)
    npz.write_bytes(bytes(data))
    with pytest.raises(RunFileError, match="damaged or not a ctxscope attention file"):
        load(npz)
    code, _, err = run_cli(capsys, "report", str(tmp_path / "run.json"), "--out", str(tmp_path / "r.html"))
    assert code == 0 and err.count("\n") == 1, err
    html = (tmp_path / "r.html").read_text()
    assert "damaged or not a ctxscope attention file" in html and "statistics only" in html


def test_an_intact_archive_still_gives_thumbnails(tmp_path: Path) -> None:
    from ctxscope.core.attention.storage import save
    from ctxscope.report.html import render_html

    run = _run_with_attention()
    save(tmp_path / "a.npz", _good_arrays())
    assert render_html([run], maps={run.id: tmp_path / "a.npz"}).count("data:image/png") == 2
