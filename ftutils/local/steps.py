"""What one training step computes, and the tricks that make it fast on a CPU.

None of them changes what is computed beyond float rounding: batches are grouped by
length (little padding), matmuls run under bf16 autocast where the CPU has bf16 units,
frozen weights are cast to bf16 once instead of on every pass, short chats use matmul
attention, the vocabulary projection runs only on positions that carry a label, LoRA
layers that share an input run as one group (`ftutils.local.fused_lora`), AdamW is
torch's fused kernel, and the prompt beginning every example of a micro-batch shares (a
classification set's system prompt, often most of its tokens) runs once, its keys and
values handed to every row (`shared_prefix`); gradients flow back through them as through
the rows' own.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ftutils.local import chatdata, fused_lora
from ftutils.local.base_models import cache_argument, returned_cache

MEGABATCH = 50  # batches sorted by length together; HF's LengthGroupedSampler uses 50 too
MICRO_BATCH_TOKENS = 4096  # padded tokens per forward pass, bounds activation memory
EAGER_ATTENTION_MAX = 512  # longest example (tokens) for which training uses matmul attention
# Models whose logits are exactly lm_head(final hidden state), so it can be applied to
# the labelled positions alone (others, e.g. with logit soft-capping, take the full path).
PLAIN_HEAD_TYPES = {"llama", "mistral", "qwen2", "qwen3", "phi3", "smollm3", "olmo2"}
SHARED_PREFIX_MIN = 16  # tokens; a shorter shared beginning saves less than splitting the pass costs


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch's batches of example indices: shuffled, then length-grouped.

    Sorting within megabatches of 50 batches puts similar lengths together (little
    padding) while the shuffle still changes which examples meet each epoch; the batch
    order is shuffled again so long batches do not all come first.
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    span = batch_size * MEGABATCH
    batches = []
    for start in range(0, len(order), span):
        mega = sorted(order[start:start + span], key=lambda i: lengths[i], reverse=True)
        batches += [mega[i:i + batch_size] for i in range(0, len(mega), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def batch_loss(model, batch, pad_id, backward: bool, n_labels: int | None = None):
    """Summed loss, correct predictions and label count over `batch` (backward if asked).

    Micro-batches bound memory for big batches; each one's loss is divided by the
    whole batch's label count (`n_labels` when `batch` is one process's share of it), so
    the gradients add up to those of the batch mean.
    """
    n_labels = n_labels or sum(e.n_trained for e in batch)
    if not batch:  # a share left empty (a batch smaller than the processes)
        return 0.0, 0, n_labels
    loss_total, correct_total, micro, width = 0.0, 0, [], 0
    for example in sorted(batch, key=lambda e: len(e.input_ids), reverse=True) + [None]:
        if example is not None and (not micro or (len(micro) + 1) * width <= MICRO_BATCH_TOKENS):
            micro.append(example)
            width = max(width, len(example.input_ids))
            continue
        ids, mask, labels = (t.to(model.device) for t in chatdata.pad_batch(micro, pad_id))
        logits, targets = labelled_logits(model, ids, mask, labels, shared_prefix(micro))
        loss = F.cross_entropy(logits.float(), targets, reduction="sum")
        if backward:
            (loss / n_labels).backward()
        loss_total += loss.item()
        correct_total += (logits.argmax(-1) == targets).sum().item()
        if example is not None:
            micro, width = [example], len(example.input_ids)
    return loss_total, correct_total, n_labels


def shared_prefix(examples) -> int:
    """How many leading tokens every example shares and none is trained on, up to the last
    one before the first trained token (whose logit the rows' own pass must compute)."""
    if len(examples) < 2:
        return 0
    first, n = examples[0].input_ids, min(len(e.input_ids) for e in examples)
    common = 0
    while common < n and all(e.input_ids[common] == first[common] for e in examples):
        common += 1
    trained = min(next((i for i, label in enumerate(e.labels) if label != chatdata.IGNORE), len(e.labels))
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
        keep = targets != chatdata.IGNORE
        hidden = hidden[:, :-1][keep]
        head = getattr(inner, "_ftutils_head", None)
        if head is not None:
            return F.linear(hidden.to(head.dtype), head), targets[keep]
        return inner.get_output_embeddings()(hidden), targets[keep]
    keep = targets != chatdata.IGNORE
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    return logits[:, :-1][keep], targets[keep]


@torch.no_grad()
def evaluate(model, examples, pad_id, autocast) -> tuple[float, int, int]:
    """Summed loss, correct predictions and label count over `examples`, in as few forward
    passes as fit."""
    model.eval()
    with autocast():
        loss, correct, n = batch_loss(model, examples, pad_id, backward=False)
    model.train()
    return loss, correct, n


def tune_for_speed(model, bf16: bool, longest: int, fuse: bool = True) -> None:
    """The same computation, arranged to take less time on a CPU."""
    inner = model.get_base_model()
    if model.device.type == "cpu" and longest <= EAGER_ATTENTION_MAX:
        # For short chats plain matmul attention trains ~18% faster than torch's CPU
        # flash-attention kernel, whose backward dominates at these sizes; its L x L
        # scores would cost too much memory for long ones.
        inner.set_attn_implementation("eager")
    if bf16:
        # Autocast would cast each frozen weight to bf16 again on every forward pass
        # (frozen weights are not in its cache); cast them once. The tied embedding
        # stays fp32 so the residual stream does too.
        tied = inner.get_input_embeddings().weight
        for module in inner.modules():
            if isinstance(module, torch.nn.Linear) and not module.weight.requires_grad and module.weight is not tied:
                module.weight.data = module.weight.data.to(torch.bfloat16)
        if inner.get_output_embeddings().weight is tied:
            # The tied output layer gets a frozen bf16 copy of its own, for the labelled
            # positions (autocast would cast its 28M weights again on every pass).
            inner._ftutils_head = tied.detach().to(torch.bfloat16)
    if fuse:
        fused_lora.fuse(model, bf16)


def adamw(params, lr: float) -> torch.optim.AdamW:
    """AdamW without weight decay, as one fused kernel over all LoRA tensors where torch has it.

    The default on a CPU loops over the ~400 LoRA tensors one elementwise op at a time
    (~10 ops each per step), which costs as much as a batch-1 forward pass."""
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0)


def want_bf16(setting, device: torch.device) -> bool:
    if setting != "auto":
        return bool(setting)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # private helpers that may move; fp32 is always correct
        return False
