"""The model registry: every id the server answers to, and what answers for it."""
from __future__ import annotations

import pytest
import torch

from ftutils.local.models import loading
from ftutils.local.models.registry import ModelNotFound, Registry


def test_registry_lists_builtins_and_extra_models(ml_data_dir, tmp_path):
    _, tokenizer = loading.load_base("tiny-smollm2", ml_data_dir)
    folder = tmp_path / "my-model"
    loading.tiny_model().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    extra = {"my-model": str(folder)}

    ids = [m.id for m in Registry(extra).bases()]
    assert ids == ["smollm2-135m-instruct", "tiny-smollm2", "my-model"]
    info = Registry(extra).bases()[2]
    assert (info.owned_by, info.context_length) == ("local", 8192)
    assert Registry().is_base("tiny-smollm2") and Registry(extra).is_base("my-model")
    assert not Registry().is_base("my-model") and not Registry().is_base("gpt-4o-mini-2024-07-18")

    model, _ = loading.load_base("my-model", ml_data_dir, extra)
    reference = loading.tiny_model()
    assert torch.equal(model.model.layers[0].mlp.up_proj.weight.cpu(), reference.model.layers[0].mlp.up_proj.weight)
    with pytest.raises(KeyError, match="unknown base model 'nope'"):
        loading.load_base("nope", ml_data_dir)


class Tuned:
    """FineTunes as the store gives them: one fine-tuned model on an alias, one checkpoint."""

    def adapter(self, model_id):
        return {"ft:gpt-4o-mini:local::abc": ("smollm2-135m-instruct", "/jobs/a/final"),
                "ft:tiny-smollm2:local::def:ckpt-step-4": ("tiny-smollm2", "/jobs/b/checkpoints/step-4")}.get(model_id)

    def listed(self):
        return [("ft:gpt-4o-mini:local::abc", 1, "local"), ("ft:tiny-smollm2:local::def:ckpt-step-4", 2, "local")]


def test_resolve_names_the_base_and_adapter_of_every_id_or_raises_model_not_found():
    models = Registry(model_aliases={"gpt-4o-mini": "tiny-smollm2"}, fine_tunes=Tuned())
    assert models.resolve("tiny-smollm2") == ("tiny-smollm2", None)
    assert models.resolve("gpt-4o-mini") == ("tiny-smollm2", None)  # an alias answers with its base
    assert models.resolve("gpt-4.1") == ("smollm2-135m-instruct", None)
    assert models.resolve("ft:gpt-4o-mini:local::abc") == ("smollm2-135m-instruct", "/jobs/a/final")
    assert models.resolve("ft:tiny-smollm2:local::def:ckpt-step-4") == ("tiny-smollm2", "/jobs/b/checkpoints/step-4")
    for unknown in ("nope", "ft:tiny-smollm2:local::zzz", "davinci-002"):
        with pytest.raises(ModelNotFound, match=f"The model `{unknown}` does not exist"):
            models.resolve(unknown)
    listed = [m.id for m in models.listed()]
    assert listed[:2] == ["smollm2-135m-instruct", "tiny-smollm2"] and listed[-2:] == [m[0] for m in Tuned().listed()]


def test_an_openai_alias_carries_openais_shutdown_date_and_the_servers_own_models_none():
    models = Registry(model_aliases={"gpt-4o-mini": "tiny-smollm2", "my-alias": "tiny-smollm2"}, fine_tunes=Tuned())
    dates = {m.id: m.shutdown_date for m in models.listed()}
    assert dates["gpt-4o-mini-2024-07-18"] == dates["gpt-4o-mini"] == dates["gpt-4.1-2025-04-14"] == "2027-01-14"
    assert dates["gpt-4.1-nano-2025-04-14"] == "2026-10-23"  # shut down on OpenAI; the alias still trains here
    assert dates["gpt-3.5-turbo-1106"] is None  # OpenAI announced none that openai_rules knows
    own = ["smollm2-135m-instruct", "tiny-smollm2", "my-alias", *(m[0] for m in Tuned().listed())]
    assert [dates[m] for m in own] == [None] * len(own)
