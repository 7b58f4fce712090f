"""How close training runs to this machine's limit: model FLOPs per token, and the matmul peak.

A LoRA step computes, per token, the frozen weights' matmuls forward (2 FLOPs per weight) and
backward to the activations (2 more: every layer's input gradient is needed for the adapters
below it) but no gradient for the frozen weights themselves: 4 x P. The adapters add a full
6 x their parameters (forward, input and weight gradients). Attention adds, per layer, the
scores Q K^T and their use on V: 4 x L x width FLOPs per token forward for a sequence of L
tokens, twice that backward (PaLM's appendix B counts the same way for full fine-tuning, 6 x P).
Only a model's config is read, so the count does not depend on how the trainer is arranged.
These are model FLOPs, as MFU counts them: work the trainer skips (the vocabulary projection on
unlabelled positions, a shared prompt run once per micro-batch) still counts, so skipped work shows
as a higher rate, as it shows as more tokens per second.

The peak is measured, not looked up: the same matmuls at the model's own shapes (every linear
layer of one decoder layer and the vocabulary projection, `rows` tokens at a time) in bf16 and
fp32, on this machine in this run. Achieved FLOP/s = trained tokens/s x FLOPs per token.
"""
from __future__ import annotations

import time

import torch


def linear_shapes(config) -> list[tuple[int, int, int]]:
    """(in, out, how many) of every linear layer of a Llama-style decoder, the output head included."""
    d = config.hidden_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or d // heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    layers = config.num_hidden_layers
    mlp = config.intermediate_size
    return [(d, heads * head_dim, layers), (d, kv * head_dim, 2 * layers), (heads * head_dim, d, layers),
            (d, mlp, 2 * layers), (mlp, d, layers), (d, config.vocab_size, 1)]


def flops_per_token(config, lengths: list[int], lora_r: int = 16) -> float:
    """Training FLOPs per token, averaged over examples of these token `lengths` (padding not counted)."""
    shapes = linear_shapes(config)
    frozen = sum(i * o * n for i, o, n in shapes)
    lora = sum(lora_r * (i + o) * n for i, o, n in shapes[:-1])  # LoRA on every linear layer but the head
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    width = config.num_attention_heads * head_dim
    tokens = sum(lengths)
    attention = sum(12 * config.num_hidden_layers * width * n * n for n in lengths)  # 4 L w forward, 8 L w back
    return 4 * frozen + 6 * lora + attention / tokens


def matmul_peak(config, rows: int, dtype: torch.dtype, seconds: float = 0.5) -> float:
    """FLOP/s of the model's linear layers, `rows` tokens at a time, in `dtype`, on torch's threads:
    the time one forward pass's matmuls take at best, weighted as the model weights them."""
    shapes = linear_shapes(config)
    flops = elapsed = 0.0
    for fan_in, fan_out, count in shapes:
        x = torch.randn(rows, fan_in, dtype=dtype)
        w = torch.randn(fan_out, fan_in, dtype=dtype)
        torch.nn.functional.linear(x, w)  # warm-up: kernels chosen, memory touched
        repeats, start = 0, time.perf_counter()
        while repeats < 3 or time.perf_counter() - start < seconds / len(shapes):
            torch.nn.functional.linear(x, w)
            repeats += 1
        flops += 2 * rows * fan_in * fan_out * count
        elapsed += (time.perf_counter() - start) / repeats * count
    return flops / elapsed
