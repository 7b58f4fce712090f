"""Direct preference optimisation (DPO), the training loop's Objective for OpenAI's "dpo" method.

A preference example (OpenAI's format, read and checked by `ftutils.data.validate`) has a
prompt (`input.messages`), a preferred and a non-preferred assistant reply. DPO (Rafailov et
al., 2023) raises the policy's log-likelihood of the preferred reply relative to a frozen
reference model, and lowers the non-preferred one's, without a reward model:

    margin = (log pi(preferred) - log ref(preferred)) - (log pi(rejected) - log ref(rejected))
    loss   = -log sigmoid(beta * margin)

log pi(reply) sums the log-probabilities of the reply's tokens (its end-of-turn token
included) given the prompt. With LoRA the reference is the base model itself: the same
weights with the adapter switched off (peft's `disable_adapter()`), so no second copy is
held. The reference never changes, so each pair's reference log-probabilities are scored
once, before the first step (`score_reference`), not again every epoch: a third less
compute per step, and the trainer's fused LoRA layers (which do not see peft's switch)
are only installed afterwards. At the first step the adapter is zero, policy == reference,
margin 0 and the loss ln 2 = 0.693 (up to bf16 rounding); it falls as the policy learns to
prefer the preferred replies. A higher beta keeps the policy closer to the reference.

Metrics per step, under the names the trainer's sink and OpenAI's checkpoints use:
`loss` (the DPO loss above) and `mean_token_accuracy` (next-token accuracy on the preferred
reply), plus DPO's own: `reward_accuracy` (share of pairs with a positive margin) and
`reward_margin` (mean beta * margin). The trainer prefixes them with train_/valid_/full_valid_.

In several processes (`parallel`, torch's DDP) each scores every pair's reference (once, before
training) and takes its share of each batch; the sums below add up across processes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ftutils.local.models import chat_format
from ftutils.local.training import examples, sft
from ftutils.local.training.examples import Pair

MICRO_BATCH_TOKENS = sft.MICRO_BATCH_TOKENS  # padded tokens per forward pass (both replies of each pair)


class Dpo:
    """OpenAI's "dpo" method as the training loop's Objective, with its `beta`."""

    def __init__(self, beta: float):
        self.beta = beta

    def load(self, path, tokenizer, max_length: int, sink, what: str) -> list[Pair]:
        return examples.load_pairs(path, tokenizer, max_length, sink, what)

    def prepare(self, model, pairs: list[Pair], pad_id: int) -> None:
        """Score the reference before the loop's speed tricks: fused LoRA layers ignore
        peft's disable_adapter()."""
        score_reference(model, pairs, pad_id)

    def loss(self, model, share: list[Pair], batch: list[Pair], pad_id: int, backward: bool,
             passes=None) -> list[float]:
        """[summed loss, correct tokens, tokens, pairs won, summed margin, pairs] over `share`
        (this process's part of `batch`); gradients of the whole batch's mean loss if `backward`."""
        return pair_sums(model, share, len(batch), pad_id, self.beta, backward, passes)

    def metrics(self, sums: list[float]) -> dict:
        """The sums over every process, as the batch's metrics (mean per pair)."""
        loss, correct, tokens, wins, margin, n = sums
        return {"loss": loss / n, "mean_token_accuracy": correct / max(1, tokens),
                "reward_accuracy": wins / n, "reward_margin": margin / n}


def _reply_logps(model, sequences: list[chat_format.Encoded], pad_id: int):
    """Per sequence: summed log-probability of its labelled tokens, and (correct, count) of
    next-token predictions there."""
    ids, mask, labels = (t.to(model.device) for t in chat_format.pad_batch(sequences, pad_id))
    logits, targets = sft.labelled_logits(model, ids, mask, labels)
    rows = (labels[:, 1:] != chat_format.IGNORE).nonzero(as_tuple=True)[0]  # the row of each labelled position
    token_logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)
    sums = torch.zeros(len(sequences), device=token_logps.device).index_add(0, rows, token_logps)
    correct = (logits.argmax(-1) == targets).float()
    per_row_correct = torch.zeros(len(sequences), device=correct.device).index_add(0, rows, correct)
    return sums, per_row_correct.detach(), torch.bincount(rows, minlength=len(sequences))


@torch.no_grad()
def score_reference(model, pairs: list[Pair], pad_id: int) -> None:
    """Each pair's reference log-probabilities: the base model, LoRA adapter switched off."""
    was_training = model.training
    model.eval()
    with model.disable_adapter():
        for micro in _micro_batches(pairs):
            logps, _, _ = _reply_logps(model, [p.chosen for p in micro] + [p.rejected for p in micro], pad_id)
            for i, pair in enumerate(micro):
                pair.reference = (logps[i].item(), logps[len(micro) + i].item())
    model.train(was_training)


def pair_sums(model, pairs: list[Pair], n_batch: int, pad_id: int, beta: float, backward: bool,
              passes=None) -> list[float]:
    """The DPO sums over `pairs`; gradients of the loss summed and divided by `n_batch` if asked.

    Micro-batches bound memory; each pair's chosen and rejected replies go through one
    forward pass together, made as `passes(fn, *args, last=...)` (`parallel.Passes`, through
    DDP; default `fn(model, *args)`). The pairs' reference log-probabilities must be scored already.
    """
    passes = passes or (lambda fn, *args, last=True: fn(model, *args))
    totals = {"loss": 0.0, "correct": 0.0, "tokens": 0, "wins": 0, "margin": 0.0}
    micros = list(_micro_batches(pairs))
    for i, micro in enumerate(micros):
        sequences = [p.chosen for p in micro] + [p.rejected for p in micro]
        with torch.set_grad_enabled(backward):
            policy, correct, counts = passes(_reply_logps, sequences, pad_id, last=i == len(micros) - 1)
        if any(p.reference is None for p in micro):
            raise RuntimeError("score_reference() must score the pairs before DPO steps")
        reference = torch.tensor([p.reference[0] for p in micro] + [p.reference[1] for p in micro],
                                 device=policy.device)
        k = len(micro)
        ratios = policy - reference
        margins = beta * (ratios[:k] - ratios[k:])
        losses = -F.logsigmoid(margins)
        if backward:
            (losses.sum() / n_batch).backward()
        totals["loss"] += losses.sum().item()
        totals["correct"] += correct[:k].sum().item()
        totals["tokens"] += int(counts[:k].sum())
        totals["wins"] += int((margins > 0).sum())
        totals["margin"] += margins.sum().item()
    return [totals["loss"], totals["correct"], totals["tokens"], totals["wins"], totals["margin"], len(pairs)]


def _micro_batches(batch: list[Pair]):
    micro, width = [], 0
    for pair in sorted(batch, key=lambda p: max(len(p.chosen.input_ids), len(p.rejected.input_ids)), reverse=True):
        longest = max(len(pair.chosen.input_ids), len(pair.rejected.input_ids))
        if micro and 2 * (len(micro) + 1) * max(width, longest) > MICRO_BATCH_TOKENS:
            yield micro
            micro, width = [], 0
        micro.append(pair)
        width = max(width, longest)
    if micro:
        yield micro
