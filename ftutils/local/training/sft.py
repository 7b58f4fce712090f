"""The supervised objective: cross-entropy on the tokens OpenAI trains (the assistant's replies).

What a step computes is also where most of its speed comes from, without changing what is
computed beyond float rounding: the vocabulary projection runs only on positions that carry a
label (`labelled_logits`), micro-batches bound memory, and the prompt beginning every example
of a micro-batch shares (a classification set's system prompt, often most of its tokens) runs
once, its keys and values handed to every row (`shared_prefix`); gradients flow back through
them as through the rows' own. The other tricks (bf16, fused LoRA, AdamW) are `speed`'s.
DPO scores replies with the same `labelled_logits`.
"""
from __future__ import annotations

import torch.nn.functional as F

from ftutils.local.models import chat_format
from ftutils.local.models.compat import cache_argument, returned_cache
from ftutils.local.training import examples

MICRO_BATCH_TOKENS = 4096  # padded tokens per forward pass, bounds activation memory
# Models whose logits are exactly lm_head(final hidden state), so it can be applied to
# the labelled positions alone (others, e.g. with logit soft-capping, take the full path).
PLAIN_HEAD_TYPES = {"llama", "mistral", "qwen2", "qwen3", "phi3", "smollm3", "olmo2"}
SHARED_PREFIX_MIN = 16  # tokens; a shorter shared beginning saves less than splitting the pass costs


class Supervised:
    """OpenAI's "supervised" method as the training loop's Objective."""

    def load(self, path, tokenizer, max_length: int, sink, what: str) -> list[chat_format.Encoded]:
        return examples.load_chats(path, tokenizer, max_length, sink, what)

    def prepare(self, model, items: list, pad_id: int) -> None:
        """Nothing to score before training."""

    def loss(self, model, share: list, batch: list, pad_id: int, backward: bool, passes=None) -> list[float]:
        """[summed loss, correct predictions, labels] over `share` (this process's part of
        `batch`), its gradients scaled as those of the whole batch's mean if `backward`."""
        loss_sum, correct, _ = batch_loss(model, share, pad_id, backward=backward,
                                          n_labels=sum(e.n_trained for e in batch), passes=passes)
        return [loss_sum, correct, sum(e.n_trained for e in share)]

    def metrics(self, sums: list[float]) -> dict:
        """The sums over every process, as the batch's metrics (without their train_ prefix)."""
        loss_sum, correct, n = sums
        return {"loss": loss_sum / n, "mean_token_accuracy": correct / n}


def batch_loss(model, batch, pad_id, backward: bool, n_labels: int | None = None, passes=None):
    """Summed loss, correct predictions and label count over `batch` (backward if asked).

    Micro-batches bound memory for big batches; each one's loss is divided by the
    whole batch's label count (`n_labels` when `batch` is one process's share of it), so
    the gradients add up to those of the batch mean. `passes(fn, *args, last=...)` makes each
    forward pass (`parallel.Passes`, through DDP); default: `fn(model, *args)`.
    """
    n_labels = n_labels or sum(e.n_trained for e in batch)
    passes = passes or (lambda fn, *args, last=True: fn(model, *args))
    loss_total, correct_total = 0.0, 0
    micros = micro_batches(batch)  # none for a share left empty (a batch smaller than the processes)
    for i, micro in enumerate(micros):
        ids, mask, labels = (t.to(model.device) for t in chat_format.pad_batch(micro, pad_id))
        logits, targets = passes(labelled_logits, ids, mask, labels, shared_prefix(micro), last=i == len(micros) - 1)
        loss = F.cross_entropy(logits.float(), targets, reduction="sum")
        if backward:
            (loss / n_labels).backward()
        loss_total += loss.item()
        correct_total += (logits.argmax(-1) == targets).sum().item()
    return loss_total, correct_total, n_labels


def micro_batches(batch) -> list[list]:
    """`batch` longest first, cut where the next example would take a micro-batch's padded
    tokens past MICRO_BATCH_TOKENS (one example per micro-batch at least)."""
    micros, width = [], 0
    for example in sorted(batch, key=lambda e: len(e.input_ids), reverse=True):
        if micros and (len(micros[-1]) + 1) * width <= MICRO_BATCH_TOKENS:
            micros[-1].append(example)
        else:
            micros.append([example])
            width = len(example.input_ids)
    return micros


def shared_prefix(examples) -> int:
    """How many leading tokens every example shares and none is trained on, up to the last
    one before the first trained token (whose logit the rows' own pass must compute)."""
    if len(examples) < 2:
        return 0
    first, n = examples[0].input_ids, min(len(e.input_ids) for e in examples)
    common = 0
    while common < n and all(e.input_ids[common] == first[common] for e in examples):
        common += 1
    trained = min(next((i for i, label in enumerate(e.labels) if label != chat_format.IGNORE), len(e.labels))
                  for e in examples)
    common = min(common, trained - 1)
    return common if common >= SHARED_PREFIX_MIN else 0


def labelled_logits(model, ids, mask, labels, prefix: int = 0):
    """Logits at the positions that predict a label, and those labels. With `prefix` > 0 the
    first `prefix` tokens (the same in every row, untrained) run once for the whole batch."""
    targets = labels[:, 1:]
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if inner.config.model_type in PLAIN_HEAD_TYPES:
        # The vocabulary projection is a fifth of SmolLM2's compute per token; most
        # positions (the prompt) have no label, so project only those that do.
        if prefix:
            body = inner.base_model
            shared = returned_cache(body(input_ids=ids[:1, :prefix], use_cache=True))
            shared.batch_repeat_interleave(ids.shape[0])
            hidden = body(input_ids=ids[:, prefix:], attention_mask=mask, use_cache=True,
                          **cache_argument(body, shared)).last_hidden_state
            targets = targets[:, prefix:]
        else:
            hidden = inner.base_model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        keep = targets != chat_format.IGNORE
        hidden = hidden[:, :-1][keep]
        head = getattr(inner, "_ftutils_head", None)
        if head is not None:
            return F.linear(hidden.to(head.dtype), head), targets[keep]
        return inner.get_output_embeddings()(hidden), targets[keep]
    keep = targets != chat_format.IGNORE
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    return logits[:, :-1][keep], targets[keep]
