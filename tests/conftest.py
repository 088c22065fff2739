"""Shared fixtures: tiny models built from configs in-process, an isolated data dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach a hub, and never show a window.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Every Ray cluster of the suite is its own, on loopback: no token authentication, in
# this process too. Ray 2.60 turns it on for a new local ray.init() when RAY_AUTH_MODE is
# unset, and keeps it on in that process after ray.shutdown(): a later session there
# with it disabled (the clusters the remote tests start) never receives a streamed
# result, so `--cluster local` after test_ray.py's or the app's cluster waited out the
# test timeout.
os.environ["RAY_AUTH_MODE"] = "disabled"


@pytest.fixture(autouse=True)
def ctxscope_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own data dir (run database, converted demos are shared)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("CTXSCOPE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir for every test that loads a demo: the GGUF is converted once."""
    return tmp_path_factory.mktemp("demo-home")


@pytest.fixture
def use_demo_home(demo_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CTXSCOPE_HOME", str(demo_home))
    return demo_home


def tiny_configs() -> dict[str, object]:
    from transformers import BertConfig, GPT2Config, LlamaConfig, MistralConfig

    return {
        "llama": LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, vocab_size=256, max_position_embeddings=512,
                             architectures=["LlamaForCausalLM"]),
        "gpt2": GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=256, n_positions=256,
                           bos_token_id=0, eos_token_id=0, architectures=["GPT2LMHeadModel"]),
        "bert": BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                           vocab_size=256, max_position_embeddings=256, architectures=["BertForMaskedLM"]),
        "mistral": MistralConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, vocab_size=256, max_position_embeddings=512, sliding_window=16,
                                 architectures=["MistralForCausalLM"]),
    }


@pytest.fixture(scope="session")
def tiny_config_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``config.json`` files of tiny architectures (loaded with random weights)."""
    root = tmp_path_factory.mktemp("configs")
    out = {}
    for name, cfg in tiny_configs().items():
        path = root / name / "config.json"
        path.parent.mkdir()
        cfg.to_json_file(str(path))
        out[name] = path
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama saved with save_pretrained, to load through the real checkpoint path."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_configs()["llama"])
    path = tmp_path_factory.mktemp("ckpt") / "tiny-llama"
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def loaded_llama(tiny_config_files: dict[str, Path]):
    from ctxscope.core.model.loading import load_model
    from ctxscope.core.spec import ModelSpec

    return load_model(ModelSpec(str(tiny_config_files["llama"]), device="cpu"))


def fast_config(lengths: tuple[int, ...], **kw: object):
    """A sweep configuration that finishes in well under a second on tiny models."""
    from ctxscope.core.spec import SweepConfig

    defaults: dict[str, object] = dict(min_repeats=3, max_repeats=5, budget_s=0.05, telemetry_hz=20.0)
    defaults.update(kw)
    return SweepConfig(lengths=lengths, **defaults)  # type: ignore[arg-type]


def drain(gen):
    """Run a sweep generator to the end: (events, returned result)."""
    from ctxscope.core.jobs.sweep import drive

    events: list = []
    return events, drive(gen, events.append)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    """A throwaway sshd on 127.0.0.1 with a key made for the test (tests/remote/sshd.py);
    skipped, with the reason, where no sshd can run."""
    from tests.remote.sshd import local_sshd, why_unavailable

    reason = why_unavailable()
    if reason:
        pytest.skip(f"no local sshd for the SSH tests: {reason}")
    with local_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


# -- the slow tests: from the committed durations record ------------------------------
#: ``pytest --durations=0 --durations-min=1`` of a whole run on two idle cores
#: (regenerate with ``python tests/durations.py``); a test whose call took longer than
#: :data:`SLOW_S` there is marked ``slow``, so ``-m "not slow"`` is the inner loop.
DURATIONS = Path(__file__).with_name("durations.txt")
SLOW_S = 5.0


def _slow_ids() -> set[str]:
    if not DURATIONS.is_file():
        return set()
    slow = set()
    for line in DURATIONS.read_text(encoding="utf-8").splitlines():
        parts = line.split(maxsplit=2)  # "12.34s call     tests/x.py::test_y[param]"
        if len(parts) == 3 and parts[1] == "call" and parts[0].endswith("s"):
            try:
                if float(parts[0][:-1]) >= SLOW_S:
                    slow.add(parts[2].strip())
            except ValueError:
                continue
    return slow


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow = _slow_ids()
    for item in items:
        if item.nodeid in slow:
            item.add_marker(pytest.mark.slow)
