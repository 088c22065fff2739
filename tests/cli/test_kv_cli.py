"""KV-cache strategies from the command line: a comma list is a matrix on one loaded
copy whose comparison shows every strategy; refusals before loading, exit 2; the analytic
bytes per strategy agree with the cache's storage; maxctx and estimate per strategy; the
job's caches travel and are checked on the wire."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ctxscope.cli import main
from ctxscope.core.measure.cache_storage import cache_bytes
from ctxscope.core.errors import WireError
from ctxscope.core.measure.kv_cache import KVOptions, int_backend, make_cache
from ctxscope.core.serialize import load_run

FAST = ["--min-repeats", "1", "--max-repeats", "2", "--budget", "0.05", "--no-store", "--quiet"]


@pytest.fixture(scope="module")
def llama_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import LlamaConfig

    path = tmp_path_factory.mktemp("kvcli") / "config.json"
    LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=256, max_position_embeddings=2048,
                architectures=["LlamaForCausalLM"]).to_json_file(str(path))
    return path


def test_a_cache_list_is_a_matrix_and_the_comparison_shows_both(llama_config, tmp_path, capsys) -> None:
    out = tmp_path / "runs"
    code = main(["sweep", str(llama_config), "--device", "cpu", "--lengths", "1024", "--mode", "decode",
                 "--cache", "dynamic,fp8", "--out", str(out), *FAST])
    assert code == 0
    by_cache = {r.header.settings.cache: r for r in (load_run(p) for p in out.glob("*.json"))}
    assert sorted(by_cache) == ["dynamic", "fp8"]
    runs = [by_cache["dynamic"], by_cache["fp8"]]
    (default,), (fp8,) = ([p for p in r.points if p.mode == "decode"] for r in runs)
    assert fp8.memory.kv_cache_bytes <= default.memory.kv_cache_bytes / 2  # from storage, at depth 1024
    text = capsys.readouterr().out
    assert "different KV cache class: dynamic, fp8" in text
    assert "KV strategy: fp8: 4.0× the context of the default float32 cache" in text


def test_refused_before_loading_with_the_reason(llama_config, tmp_path, capsys, monkeypatch) -> None:
    from tests.core.families import write_family

    import ctxscope.core.model.loading as loading

    def no_load(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(loading, "load_model", no_load)
    mamba = write_family("mamba", tmp_path)
    assert main(["sweep", str(mamba), "--device", "cpu", "--lengths", "64", "--cache", "dynamic,fp8", *FAST]) == 2
    assert "nothing that grows with the context to quantize" in capsys.readouterr().err
    assert main(["sweep", str(llama_config), "--device", "cpu", "--lengths", "64", "--cache", "offload", *FAST]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err
    assert main(["sweep", str(llama_config), "--device", "cpu", "--lengths", "64", "--cache", "fp8",
                 "--kv-group-size", "32", *FAST]) == 2
    assert "int4 / int2" in capsys.readouterr().err
    assert main(["sweep", str(llama_config), "--device", "cpu", "--lengths", "64", "--cache", "fp9", *FAST]) == 2
    assert "unknown cache 'fp9'" in capsys.readouterr().err


@pytest.mark.parametrize("strategy", ["dynamic", "static", "fp8",
                                      pytest.param("int4", marks=pytest.mark.skipif(int_backend() is None,
                                                                                    reason="no optimum-quanto / hqq")),
                                      pytest.param("int2", marks=pytest.mark.skipif(int_backend() != "quanto",
                                                                                    reason="quanto's layout"))])
def test_analytic_bytes_per_strategy_equal_the_cache_storage(llama_config, strategy) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    from ctxscope.core.predict.analytic import describe_config
    from ctxscope.core.predict.kv_analytic import strategy_kv_bytes

    config = AutoConfig.from_pretrained(llama_config.parent)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    options = KVOptions(group_size=32)
    cache = make_cache(strategy, config, length=640, options=options)
    with torch.inference_mode():
        model(input_ids=torch.randint(0, 256, (1, 640)), use_cache=True, cache=cache)
    assert cache_bytes(cache) == strategy_kv_bytes(describe_config(config), 640, "float32", strategy, options=options)


def test_estimate_predicts_bytes_per_strategy(llama_config, capsys) -> None:
    assert main(["estimate", str(llama_config), "--lengths", "1k", "--cache", "dynamic,fp8", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    row = result["lengths"][0]
    assert row["kv_cache_bytes_by_cache"]["fp8"] == row["kv_cache_bytes"] // 4 + 2 * 2 * 4
    assert result["kv_bytes_per_token_by_cache"]["fp8"] == pytest.approx(result["kv_bytes_per_token"] / 4)


def test_maxctx_answers_per_strategy(llama_config, capsys) -> None:
    code = main(["maxctx", str(llama_config), "--device", "cpu", "--cache", "dynamic,fp8", "--memory-budget", "12MiB",
                 "--granularity", "512", "--format", "json"])
    assert code == 0
    answers = json.loads(capsys.readouterr().out)
    assert [a["cache"] for a in answers] == ["dynamic", "fp8"]
    assert answers[1]["largest_fit"] >= answers[0]["largest_fit"] > 0


def test_job_caches_travel_and_are_checked(llama_config) -> None:
    from ctxscope.core.jobs.job import Job, job_from_dict, job_to_dict
    from ctxscope.core.spec import ModelSpec, SweepConfig

    spec = ModelSpec(str(llama_config), device="cpu")
    job = Job("matrix", (spec, spec), SweepConfig(lengths=(64,)), caches=("dynamic", "fp8"))
    assert job_from_dict(json.loads(json.dumps(job_to_dict(job)))) == job
    bad = {**job_to_dict(job), "caches": ["dynamic", "fp9"]}
    with pytest.raises(WireError, match="caches"):
        job_from_dict(bad)
    with pytest.raises(WireError, match="caches"):
        job_from_dict({**job_to_dict(job), "caches": "fp8"})
