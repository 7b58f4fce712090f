"""The same computation, arranged to take less time on a CPU: the tricks that change nothing
beyond float rounding, installed after the model is wrapped in LoRA.

Matmuls run under bf16 autocast where the CPU has bf16 units (`want_bf16`), and frozen weights
are cast to bf16 once instead of on every pass; short chats use matmul attention; LoRA layers
that share an input run as one group (`fused_lora`); AdamW is torch's fused kernel (`adamw`).
With the supervised objective's head-on-labels-only and shared prefix (`sft`), the trainer
went through 2.59x the tokens per second of a plain transformers + peft loop on 2 threads, and
3.04x in two processes (`benchmarks/bench_train.py`, 2026-12-02, the 2-core box otherwise idle).
"""
from __future__ import annotations

import torch

from ftutils.local.training import fused_lora

EAGER_ATTENTION_MAX = 512  # longest example (tokens) for which training uses matmul attention


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
