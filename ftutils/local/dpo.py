"""Direct preference optimisation (DPO) for the local trainer: preference pairs in, loss out.

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
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ftutils.local import chatdata, steps
from ftutils.openai_rules import AUTO_BETA

DEFAULT_BETA = AUTO_BETA  # what OpenAI's "auto" beta means here
MICRO_BATCH_TOKENS = steps.MICRO_BATCH_TOKENS  # padded tokens per forward pass (both replies of each pair)


@dataclass
class Pair:
    chosen: chatdata.Encoded
    """Prompt + preferred reply; labels only on the reply."""
    rejected: chatdata.Encoded
    """Prompt + non-preferred reply."""
    reference: tuple[float, float] | None = None
    """The reference model's log-probabilities of (chosen, rejected), once scored."""

    @property
    def input_ids(self) -> list[int]:
        """Both sequences' tokens: what a step processes (batching by length, trained tokens)."""
        return self.chosen.input_ids + self.rejected.input_ids

    @property
    def truncated(self) -> bool:
        return self.chosen.truncated or self.rejected.truncated


def encode_pair(tokenizer, row: dict, max_length: int) -> Pair | None:
    """A preference line as two encoded conversations; None when a reply has no token left
    to learn from (after truncation)."""
    prompt = (row.get("input") or {}).get("messages") or []
    # Only the final reply is compared: earlier assistant turns in the prompt are context.
    prompt = [{**m, "weight": 0} if m.get("role") == "assistant" else m for m in prompt]
    replies = []
    for key in ("preferred_output", "non_preferred_output"):
        reply = row.get(key, row.get(key.replace("output", "completion"))) or []
        replies.append(chatdata.encode(tokenizer, [*prompt, {**reply[0], "weight": 1}], max_length))
    pair = Pair(*replies)
    return pair if pair.chosen.n_trained and pair.rejected.n_trained else None


def load_pairs(path, tokenizer, config, sink, what: str) -> list[Pair]:
    """The pairs of a preference file, read through the validator's own line reader."""
    pairs, skipped, truncated, max_length = [], 0, 0, config.max_length
    for row in chatdata.read_jsonl(path):
        pair = encode_pair(tokenizer, row, max_length)
        if pair is None:
            skipped += 1
            continue
        truncated += pair.truncated
        pairs.append(pair)
    chatdata.warn_dropped(sink, what, "pairs", max_length, truncated, skipped,
                          "have a reply with no tokens left after truncation")
    return pairs


def _reply_logps(model, sequences: list[chatdata.Encoded], pad_id: int):
    """Per sequence: summed log-probability of its labelled tokens, and (correct, count) of
    next-token predictions there."""
    ids, mask, labels = (t.to(model.device) for t in chatdata.pad_batch(sequences, pad_id))
    logits, targets = steps.labelled_logits(model, ids, mask, labels)
    rows = (labels[:, 1:] != chatdata.IGNORE).nonzero(as_tuple=True)[0]  # the row of each labelled position
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


def batch_metrics(model, batch: list[Pair], pad_id: int, beta: float, backward: bool) -> dict:
    """DPO loss and metrics over `batch` (mean per pair); gradients of the batch mean if asked.

    Micro-batches bound memory; each pair's chosen and rejected replies go through one
    forward pass together. The pairs' reference log-probabilities must be scored already.
    """
    totals = {"loss": 0.0, "correct": 0.0, "tokens": 0, "wins": 0, "margin": 0.0}
    for micro in _micro_batches(batch):
        sequences = [p.chosen for p in micro] + [p.rejected for p in micro]
        with torch.set_grad_enabled(backward):
            policy, correct, counts = _reply_logps(model, sequences, pad_id)
        if any(p.reference is None for p in micro):
            raise RuntimeError("score_reference() must score the pairs before DPO steps")
        reference = torch.tensor([p.reference[0] for p in micro] + [p.reference[1] for p in micro],
                                 device=policy.device)
        k = len(micro)
        ratios = policy - reference
        margins = beta * (ratios[:k] - ratios[k:])
        losses = -F.logsigmoid(margins)
        if backward:
            (losses.sum() / len(batch)).backward()
        totals["loss"] += losses.sum().item()
        totals["correct"] += correct[:k].sum().item()
        totals["tokens"] += int(counts[:k].sum())
        totals["wins"] += int((margins > 0).sum())
        totals["margin"] += margins.sum().item()
    n = len(batch)
    return {"loss": totals["loss"] / n, "mean_token_accuracy": totals["correct"] / max(1, totals["tokens"]),
            "reward_accuracy": totals["wins"] / n, "reward_margin": totals["margin"] / n}


@torch.no_grad()
def evaluate(model, pairs: list[Pair], pad_id: int, beta: float, autocast) -> dict:
    model.eval()
    with autocast():
        metrics = batch_metrics(model, pairs, pad_id, beta, backward=False)
    model.train()
    return metrics


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
