"""A half dtype on a CPU without native instructions times the emulation (issue 27,
item 16): the sweep says so before it measures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ctxscope.cli import main
from ctxscope.core.machine.devices import emulated_dtype_note

FAST = ["--min-repeats", "2", "--max-repeats", "2", "--budget", "0.05"]


@pytest.fixture
def no_native_half(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported", "_is_amx_fp16_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False)


def test_the_note_names_emulated_half_types_on_cpu_only(no_native_half: None, monkeypatch) -> None:
    note = emulated_dtype_note("cpu", "bfloat16")
    assert note is not None and "bfloat16 on this CPU is emulated" in note and "float32" in note
    assert "float16 on this CPU is emulated" in (emulated_dtype_note("cpu", "float16") or "")
    assert emulated_dtype_note("cpu", "float32") is None and emulated_dtype_note("cuda:0", "bfloat16") is None
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)  # native: nothing to say
    assert emulated_dtype_note("cpu", "bfloat16") is None


def test_a_bfloat16_cpu_sweep_warns_first(no_native_half: None, capsys, tiny_config_files: dict[str, Path]) -> None:
    code = main(["sweep", str(tiny_config_files["llama"]), "--device", "cpu", "--dtype", "bfloat16", "--lengths", "16",
                 "--mode", "prefill", "--no-store", *FAST])
    err = capsys.readouterr().err
    assert code == 0 and err.count("warning: bfloat16 on this CPU is emulated") == 1
    main(["sweep", str(tiny_config_files["llama"]), "--device", "cpu", "--lengths", "16", "--mode", "prefill",
          "--no-store", *FAST])
    assert "emulated" not in capsys.readouterr().err  # float32 (auto on CPU): nothing to say
