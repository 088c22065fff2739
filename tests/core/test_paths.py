"""The data directory: CTXSCOPE_HOME, platformdirs, and the XDG rule where platformdirs is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ctxscope.core import paths


def test_home_override_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CTXSCOPE_HOME", str(tmp_path / "x"))
    assert paths.data_dir_path() == tmp_path / "x"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG rule is Linux's")
@pytest.mark.parametrize("xdg", [None, "/srv/data", "relative/ignored"])
def test_without_platformdirs_the_xdg_rule_gives_platformdirs_answer(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, xdg: str | None) -> None:
    import platformdirs

    monkeypatch.delenv("CTXSCOPE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    if xdg is None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_DATA_HOME", xdg)
    expected = Path(platformdirs.user_data_dir("ctxscope", appauthor=False))
    monkeypatch.setitem(sys.modules, "platformdirs", None)  # import platformdirs → ImportError
    with pytest.raises(ImportError):
        import platformdirs as _  # noqa: F401
    assert paths.data_dir_path() == expected
    if xdg is None:
        assert expected == tmp_path / ".local" / "share" / "ctxscope"
