"""``ctxscope install-desktop [--uninstall]``: put ctxscope in this user's application
menu (freedesktop desktop entry, hicolor icons, AppStream metainfo)."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ctxscope.core.errors import BadInputError

APP_ID = "io.github.ctxscope.ctxscope"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("install-desktop", help="add ctxscope to this user's application menu (Linux desktops)",
                       description="Install the desktop entry, icons and AppStream metainfo for the current user.")
    p.add_argument("--uninstall", action="store_true", help="remove what install-desktop installed")
    p.add_argument("--data-dir", default=None,
                   help="where to install (default: $XDG_DATA_HOME, else ~/.local/share)")
    p.set_defaults(func=run)


def data_home(value: str | None) -> Path:
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return Path(xdg) if xdg else Path.home() / ".local" / "share"


def targets(root: Path) -> dict[str, Path]:
    """Every file install-desktop writes, by role."""
    out = {"desktop": root / "applications" / f"{APP_ID}.desktop",
           "metainfo": root / "metainfo" / f"{APP_ID}.metainfo.xml",
           "svg": root / "icons" / "hicolor" / "scalable" / "apps" / "ctxscope.svg"}
    for size in ICON_SIZES:
        out[f"png{size}"] = root / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "ctxscope.png"
    return out


def launch_command() -> str:
    """The Exec line's command: the bundle's own executable, this environment's
    ``ctxscope`` script, or this Python with ``-m ctxscope`` (a venv not on PATH)."""
    if getattr(sys, "frozen", False):
        return shlex.quote(sys.executable) + " gui"
    script = shutil.which("ctxscope")
    if script and Path(script).resolve().parent == Path(sys.executable).resolve().parent:
        return _exec_quote(script) + " gui"
    return _exec_quote(sys.executable) + " -m ctxscope gui"


def _exec_quote(arg: str) -> str:
    # The desktop entry spec quotes with double quotes and escapes ", `, $ and \\.
    if not any(c in arg for c in ' \t"`$\\\'><~|&;*?#()'):
        return arg
    return '"' + "".join("\\" + c if c in '"`$\\' else c for c in arg) + '"'


def run(args: argparse.Namespace) -> int:
    from ctxscope._resources import desktop_dir, resource_path

    root = data_home(args.data_dir)
    files = targets(root)
    if args.uninstall:
        removed = [p for p in files.values() if p.exists()]
        for path in removed:
            path.unlink()
        _refresh(root)
        print(f"removed {len(removed)} file(s) from {root}" if removed else f"nothing installed in {root}")
        return 0
    source = desktop_dir()
    entry = source / f"{APP_ID}.desktop"
    if not entry.exists():
        raise BadInputError(f"the desktop entry is missing from this installation ({entry})")
    if root.exists() and not os.access(root, os.W_OK):
        raise BadInputError(f"--data-dir {root}: not writable")
    text = entry.read_text(encoding="utf-8")
    lines = [f"Exec={launch_command()}" if line.startswith("Exec=") else line for line in text.splitlines()]
    copies = {"metainfo": source / f"{APP_ID}.metainfo.xml", "svg": resource_path("icons", "ctxscope.svg")}
    for size in ICON_SIZES:
        copies[f"png{size}"] = resource_path("icons", "hicolor", f"{size}x{size}", "apps", "ctxscope.png")
    for role, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if role == "desktop":
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        else:
            shutil.copyfile(copies[role], path)
    _refresh(root)
    print(f"installed {files['desktop']}\n  launches: {launch_command()}\n  icons: {len(ICON_SIZES)} sizes + SVG in "
          f"{root / 'icons' / 'hicolor'}\n  metainfo: {files['metainfo']}\n"
          "Log out and in (or wait a moment) if the launcher does not show ctxscope yet. "
          "Remove with: ctxscope install-desktop --uninstall")
    return 0


def _refresh(root: Path) -> None:
    """Tell the desktop about the change where the tools exist (best effort, quiet)."""
    for cmd in (["update-desktop-database", "-q", str(root / "applications")],
                ["gtk-update-icon-cache", "-q", "-t", "-f", str(root / "icons" / "hicolor")]):
        if shutil.which(cmd[0]) and Path(cmd[-1]).is_dir():
            subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
