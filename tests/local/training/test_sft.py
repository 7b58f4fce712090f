"""The supervised objective's forward pass: a shared system prompt runs once, same loss and gradients."""
from __future__ import annotations

import pytest
import torch

from ftutils.local.models import chat_format
from ftutils.local.training import sft, speed
from tests.local.helpers import tiny_lora

WORDS = {"good": "positive", "great": "positive", "lovely": "positive", "bad": "negative", "awful": "negative",
         "dull": "negative"}


@pytest.mark.parametrize("bf16", [False, True])
def test_a_shared_system_prompt_runs_once_with_the_same_loss_and_gradients(ml_data_dir, bf16):
    model, tokenizer = tiny_lora(ml_data_dir, std=0.02)
    speed.tune_for_speed(model, bf16, 200)
    system = {"role": "system", "content": "Classify the sentiment of the review into positive or negative. "
                                           "Answer with one word and nothing else, in lower case."}
    batch = [chat_format.encode(tokenizer, [system, {"role": "user", "content": f"Review {i}: it was {word}."},
                                         {"role": "assistant", "content": label}], 512)
             for i, (word, label) in enumerate(sorted(WORDS.items()))]
    prefix = sft.shared_prefix(batch)
    assert prefix >= sft.SHARED_PREFIX_MIN and prefix < min(
        next(i for i, x in enumerate(e.labels) if x != chat_format.IGNORE) for e in batch)
    assert sft.shared_prefix(batch[:1]) == 0  # one row: nothing to share
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    params = [p for p in model.parameters() if p.requires_grad]
    results = []
    for share in (True, False):
        with pytest.MonkeyPatch.context() as patch:
            if not share:
                patch.setattr(sft, "shared_prefix", lambda examples: 0)
            model.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss, correct, n = sft.batch_loss(model, batch, pad, backward=True)
            results.append((loss, correct, n, [p.grad.detach().clone() for p in params]))
    (loss_a, correct_a, n_a, grads_a), (loss_b, correct_b, n_b, grads_b) = results
    tolerance = 2e-2 if bf16 else 1e-4
    assert n_a == n_b and correct_a == correct_b
    assert loss_a == pytest.approx(loss_b, rel=tolerance)
    flat_a, flat_b = torch.cat([g.flatten() for g in grads_a]), torch.cat([g.flatten() for g in grads_b])
    assert flat_b.abs().sum() > 0
    assert (flat_a - flat_b).norm() <= tolerance * flat_b.norm()
