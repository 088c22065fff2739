"""Packaging and first-run: the desktop entry and AppStream file validate, icons exist
at every size, install-desktop installs and uninstalls, resources load from an installed
wheel, ``ctxscope doctor`` reports and suggests fixes."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from ctxscope.cli import main
from ctxscope.cli.desktop_cmd import APP_ID, ICON_SIZES, targets

ROOT = Path(__file__).resolve().parents[2]
LINUX = ROOT / "packaging" / "linux"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_icons_exist_at_every_size() -> None:
    for size in ICON_SIZES:
        assert png_size(ROOT / "resources" / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "ctxscope.png") == (
            size, size)
    for name in ("run", "stop", "open", "export", "compare"):
        assert (ROOT / "resources" / "icons" / "toolbar" / f"{name}.svg").read_text().startswith("<svg")


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils not installed")
def test_desktop_entry_validates() -> None:
    proc = subprocess.run(["desktop-file-validate", str(LINUX / f"{APP_ID}.desktop")], capture_output=True, text=True)
    assert proc.returncode == 0 and "error" not in proc.stdout, proc.stdout


@pytest.mark.skipif(shutil.which("appstreamcli") is None, reason="appstream not installed")
def test_metainfo_validates() -> None:
    proc = subprocess.run(["appstreamcli", "validate", "--no-net", str(LINUX / f"{APP_ID}.metainfo.xml")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_install_desktop_and_uninstall(capsys, tmp_path: Path) -> None:
    root = tmp_path / "share"
    assert main(["install-desktop", "--data-dir", str(root)]) == 0
    files = targets(root)
    assert all(p.exists() for p in files.values())
    entry = files["desktop"].read_text()
    exec_line = next(line for line in entry.splitlines() if line.startswith("Exec="))
    command = exec_line.removeprefix("Exec=").split()[0].strip('"')
    assert Path(command).exists() and exec_line.endswith(" gui"), exec_line  # an absolute launcher of this env
    assert "Icon=ctxscope" in entry
    assert png_size(files["png48"]) == (48, 48)
    if shutil.which("desktop-file-validate"):
        proc = subprocess.run(["desktop-file-validate", str(files["desktop"])], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout
    assert "installed" in capsys.readouterr().out
    assert main(["install-desktop", "--data-dir", str(root), "--uninstall"]) == 0
    assert not any(p.exists() for p in files.values())
    assert f"removed {len(files)} file(s)" in capsys.readouterr().out
    assert main(["install-desktop", "--data-dir", str(root), "--uninstall"]) == 0
    assert "nothing installed" in capsys.readouterr().out


def test_exec_quoting() -> None:
    from ctxscope.cli.desktop_cmd import _exec_quote

    assert _exec_quote("/usr/bin/ctxscope") == "/usr/bin/ctxscope"
    assert _exec_quote('/home/a b/$x"y') == '"/home/a b/\\$x\\"y"'


@pytest.mark.slow
def test_wheel_installed_in_a_venv_finds_its_resources(tmp_path: Path) -> None:
    """Build the wheel, install it in a fresh venv (dependencies from this environment),
    and load every kind of resource from the installed copy, away from the checkout."""
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(wheels)],
                           capture_output=True, text=True, timeout=300)
    if build.returncode != 0 and "hatchling" in build.stderr + build.stdout:
        pytest.skip("cannot build the wheel here: hatchling unavailable (no package index)")
    assert build.returncode == 0, build.stderr
    [wheel] = wheels.glob("ctxscope-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The dependencies come from the environment running this test, whatever it is: a .pth
    # line per site directory. (--system-site-packages would give the *base* interpreter's,
    # which lacks them when this test runs in a venv: CI's fresh venvs did.) Lines of a .pth
    # are only appended to sys.path, so an editable install there cannot shadow the wheel.
    site_dirs = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    target = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    Path(target).mkdir(parents=True, exist_ok=True)
    (Path(target) / "_test_dependencies.pth").write_text("".join(f"{d}\n" for d in site_dirs), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    script = (
        "import json, ctxscope._resources as r\n"
        "paths = {'root': r.resources_dir(), 'preset': r.resource_path('presets', 'gpt2.json'),"
        " 'icon': r.resource_path('icons', 'hicolor', '512x512', 'apps', 'ctxscope.png'),"
        " 'toolbar': r.resource_path('icons', 'toolbar', 'run.svg'),"
        " 'template': r.resource_path('report', 'report.html.j2'), 'text': r.resource_path('texts', 'sample.txt'),"
        " 'novel': r.resource_path('texts', 'pride-and-prejudice.txt.gz'),"
        " 'quality template': r.resource_path('report', 'quality.html.j2'),"
        " 'desktop': r.desktop_dir() / 'io.github.ctxscope.ctxscope.desktop'}\n"
        "print(json.dumps({k: [str(v), v.exists()] for k, v in paths.items()}))\n"
        # The quality passes read the shipped novels from the installed copy, decompressed.
        "from ctxscope.core.quality.texts import read_document\n"
        "assert read_document('the-great-gatsby').text.startswith(' ' * 20), 'gatsby'\n"
        "assert 'It is a truth universally acknowledged' in read_document('pride-and-prejudice').text\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(python), "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    for name, (path, exists) in found.items():
        assert exists, f"{name} missing: {path}"
        assert path.startswith(str(venv)), f"{name} came from {path}, not the installed wheel"
    # The installed console script works and renders a report from the wheel's template.
    version = subprocess.run([str(venv / "bin" / "ctxscope"), "--version"], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("ctxscope ")


def test_doctor_reports_and_suggests_fixes(capsys, monkeypatch) -> None:
    import ctypes.util

    real = ctypes.util.find_library
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None if name == "xcb-cursor" else real(name))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    code = main(["doctor", "--format", "json", "--no-qt-probe"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert {"Python", "torch", "torch build", "transformers", "NVIDIA driver / NVML", "Qt (PySide6)", "display", "HF cache",
            "offline mode", "run history", "HTML reports"} <= set(checks)
    assert code == (1 if any(c["status"] == "fail" for c in checks.values()) else 0)
    if sys.platform.startswith("linux"):
        assert checks["display"]["status"] == "warn" and "xvfb-run" in checks["display"]["fix"]
        libs = checks["Qt system libraries"]
        assert libs["status"] == "warn" and "libxcb-cursor0" in libs["fix"] and "apt-get install" in libs["fix"]
    assert checks["run history"]["status"] == "ok"
    code = main(["doctor", "--no-qt-probe"])
    out = capsys.readouterr().out
    assert "To fix:" in out and ("Ready." in out or "problem(s) found" in out)


def test_doctor_offline_mode_is_reported(capsys, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    main(["doctor", "--format", "json", "--no-qt-probe"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert checks["offline mode"]["detail"] == "HF_HUB_OFFLINE set: only cached models load"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    main(["doctor", "--format", "json", "--no-qt-probe"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert checks["offline mode"]["detail"].startswith("off")


def test_resources_from_the_checkout() -> None:
    """In a source checkout (editable install or PYTHONPATH=.) resources come from the
    repository's own folders."""
    from ctxscope._resources import desktop_dir, resource_path, resources_dir

    assert resources_dir() == ROOT / "resources"
    assert resource_path("report", "report.html.j2").is_file()
    assert resource_path("icons", "toolbar", "export.svg").is_file()
    assert desktop_dir() == LINUX and (desktop_dir() / f"{APP_ID}.desktop").is_file()
