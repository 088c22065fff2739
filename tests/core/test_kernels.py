"""Which attention kernels can run is decided by the core, before anything loads."""

from __future__ import annotations

import pytest

from ctxscope.cli import main
from ctxscope.core.model import kernels
from ctxscope.core.errors import BadInputError
from ctxscope.core.model.loading import check_source, load_model
from ctxscope.core.spec import ModelSpec


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The packages this test pretends are installed (none unless it adds them)."""
    present: set[str] = set()
    monkeypatch.setattr(kernels, "_installed", lambda module: module in present)
    return present


def test_flash_attention_needs_its_package(installed: set[str]) -> None:
    problem = kernels.kernel_problem("flash_attention_2")
    assert problem is not None and "not installed" in problem and "pip install flash-attn" in problem
    assert "flash_attention_2" not in kernels.usable_kernels()
    assert kernels.usable_kernels() == ("sdpa", "eager", "flex_attention")
    installed.add("flash_attn")
    assert kernels.kernel_problem("flash_attention_2") is None
    assert kernels.usable_kernels() == kernels.KERNELS
    for always in ("sdpa", "eager", "flex_attention", None):
        assert kernels.kernel_problem(always) is None


def test_hub_kernels_need_trust_and_their_package(installed: set[str]) -> None:
    name = "kernels-community/flash-attn"
    refused = kernels.kernel_problem(name)
    assert refused is not None and "--trust-remote-code" in refused and "downloaded and run" in refused
    needs = kernels.kernel_problem(name, trust_remote_code=True)
    assert needs is not None and "pip install kernels" in needs
    installed.add("kernels")
    assert kernels.kernel_problem(name, trust_remote_code=True) is None


def test_loading_refuses_before_reading_weights(installed: set[str], tiny_config_files,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForCausalLM

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the kernel was checked")

    monkeypatch.setattr(AutoModelForCausalLM, "from_config", no_load)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_load)
    spec = ModelSpec(str(tiny_config_files["llama"]), device="cpu", dtype="bfloat16",
                     attn_implementation="flash_attention_2")
    check_source(spec)  # a matrix may still measure its other kernels: asked at load time
    with pytest.raises(BadInputError, match="flash_attention_2 is not installed"):
        load_model(spec)
    hub = ModelSpec(str(tiny_config_files["llama"]), device="cpu", attn_implementation="someone/attention")
    with pytest.raises(BadInputError, match="Hugging Face Hub"):
        load_model(hub)


def test_cli_says_it_in_one_line_and_a_matrix_keeps_the_rest(installed: set[str], capsys, tiny_config_files) -> None:
    model = str(tiny_config_files["llama"])
    code = main(["sweep", model, "--device", "cpu", "--lengths", "16", "--attn", "someone/attention"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("loading")]
    assert code == 2 and len(lines) == 1 and "--trust-remote-code" in lines[0] and "Traceback" not in err
    code = main(["sweep", model, "--device", "cpu", "--dtype", "bfloat16", "--lengths", "16",
                 "--attn", "sdpa,flash_attention_2", "--min-repeats", "3", "--max-repeats", "3"])
    out, err = capsys.readouterr()
    assert code == 2 and "flash_attention_2 is not installed" in err  # the skipped cell, one line
    assert "(complete)" in out and out.count("Run stored as") == 1  # sdpa measured all the same
