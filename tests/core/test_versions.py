"""Installed versions against the declared ranges and the last tested set (doctor)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from ctxscope import versions
from ctxscope.cli import main


def test_constraints_pin_every_declared_dependency() -> None:
    tested = versions.tested_versions()
    declared = {versions._norm(r.name) for r in versions.declared_requirements()}
    assert {"torch", "transformers", "numpy", "pyside6-essentials"} <= declared
    assert declared <= set(tested), f"not pinned in resources/constraints.txt: {declared - set(tested)}"


def test_verdicts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    installed = transformers.__version__
    constraints = tmp_path / "c.txt"
    constraints.write_text(f"# header\ntransformers==5.0.0\nnumpy=={versions._installed('numpy')}  # same\n")
    monkeypatch.setattr(versions, "declared_requirements", lambda: [
        Requirement("transformers>=5.0"), Requirement("numpy>=1.0"), Requirement("torch>=99"),
        Requirement("surely-not-a-package-ctxscope>=1")])
    report = {d.name: d for d in versions.dependency_report(constraints)}
    assert report["transformers"].verdict == ("newer" if installed != "5.0.0" else "ok")
    assert report["transformers"].tested == "5.0.0" and report["transformers"].installed == installed
    assert report["numpy"].verdict == "ok"
    assert report["torch"].verdict == "outside" and report["torch"].essential
    assert report["surely-not-a-package-ctxscope"].verdict == "missing"


def test_doctor_names_a_version_outside_the_range(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(versions, "declared_requirements", lambda: [Requirement("transformers>=99.0")])
    code = main(["doctor", "--format", "json", "--no-qt-probe"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert code == 1
    assert checks["transformers"]["status"] == "fail" and ">=99.0" in checks["transformers"]["detail"]
    assert checks["transformers"]["fix"] == 'pip install "transformers>=99.0"'
