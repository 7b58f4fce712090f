"""Fused LoRA layers (`training.fused_lora`) compute what plain peft computes: the same outputs
and the same gradients, for every LoRA weight and for the input."""
from __future__ import annotations

import copy

import pytest
import torch

from ftutils.local.models import loading
from ftutils.local.training import fused_lora, speed
from tests.local.helpers import tiny_lora


def lora_model(ml_data_dir):
    return tiny_lora(ml_data_dir, std=0.05)[0]


def outputs_and_grads(model, ids):
    model.zero_grad(set_to_none=True)
    embeddings = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    logits = model(inputs_embeds=embeddings, use_cache=False).logits
    (logits.float().square().mean()).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return logits.detach().float(), grads, embeddings.grad.detach().clone()


def test_fused_layers_give_peft_outputs_and_gradients(ml_data_dir):
    plain = lora_model(ml_data_dir)
    fused = copy.deepcopy(plain)
    assert fused_lora.fuse(fused) == len(fused.get_base_model().model.layers) == 2
    ids = torch.randint(0, 49152, (3, 17), generator=torch.Generator().manual_seed(1))
    logits_a, grads_a, input_a = outputs_and_grads(plain, ids)
    logits_b, grads_b, input_b = outputs_and_grads(fused, ids)
    assert torch.allclose(logits_a, logits_b, rtol=1e-4, atol=1e-4)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) == 2 * 7 * 2  # A and B of 7 layers, 2 blocks
    for name in grads_a:
        assert grads_a[name].abs().sum() > 0, name
        assert torch.allclose(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-5), name
    assert torch.allclose(input_a, input_b, rtol=1e-4, atol=1e-6)


def test_under_bf16_autocast_they_are_as_close_to_fp32_as_peft_is(ml_data_dir):
    """As the trainer runs them, frozen weights cast to bf16 once; the layers fused or not (the
    rotary tables as they are in both). bf16 rounds both paths, each its own way: the fused
    layers must land as close to the fp32 answer as peft's own bf16 computation does."""
    exact = lora_model(ml_data_dir)
    plain = copy.deepcopy(exact)
    speed.tune_for_speed(plain, True, 64, fuse=False)
    fused = copy.deepcopy(plain)
    fused_lora.fuse(fused, bf16=False)
    ids = torch.randint(0, 49152, (2, 11), generator=torch.Generator().manual_seed(2))
    logits, grads, _ = outputs_and_grads(exact, ids)
    reference = torch.cat([g.flatten() for g in grads.values()])
    errors = {}
    for name, model in (("peft", plain), ("fused", fused)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got_logits, got_grads, _ = outputs_and_grads(model, ids)
        flat = torch.cat([got_grads[n].flatten() for n in grads])
        errors[name] = ((got_logits - logits).norm() / logits.norm(), (flat - reference).norm() / reference.norm())
    assert errors["fused"][0] <= 1.5 * errors["peft"][0] + 1e-3 and errors["fused"][0] < 0.02
    assert errors["fused"][1] <= 1.5 * errors["peft"][1] and errors["fused"][1] < 0.15


@pytest.mark.parametrize("change", ["dropout", "second adapter"])
def test_layers_it_cannot_fuse_keep_peft_forward(ml_data_dir, change):
    from peft import LoraConfig, get_peft_model

    model, _ = loading.load_base("tiny-smollm2", ml_data_dir)
    config = LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM",
                        lora_dropout=0.1 if change == "dropout" else 0.0)
    model = get_peft_model(model, config)
    if change == "second adapter":
        model.add_adapter("other", LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    assert fused_lora.fuse(model) == 0
