"""LoRA layers computed in a few large operations instead of many small ones.

PEFT computes each adapted linear layer as `base(x) + B(A(x)) * scale`: under bf16 autocast
that is a cast of x for each of the two paths, three matmuls, a scaling pass over the whole
output and an addition, each recorded for backward (profiled on SmolLM2 at batch 8: dtype
copies were 22 % of a step and elementwise mul/add 19 %, against 44 % in matmuls). Here the
layers that read the same input are one group: q, k and v (and gate and up) share one cast
of x, one matmul with their frozen weights side by side, one matmul with their A matrices
stacked, and one fused multiply-add with their B matrices on a block diagonal. The backward
pass is written out, so autograd records one node per group.

The PEFT modules and their parameters stay as they are (adapters save, load and resume as
before); only their forward is redirected. Frozen weights of a group are moved into one
tensor, each module's weight becoming a view of its rows, so no memory is duplicated.
"""
from __future__ import annotations

import torch

ATTENTION = ("q_proj", "k_proj", "v_proj")
MLP_IN = ("gate_proj", "up_proj")


class _LoraGroup(torch.autograd.Function):
    """y = x W^T (+ bias) + scale * (x A^T) B^T for LoRA layers side by side (B block-diagonal)."""

    @staticmethod
    def forward(ctx, x, weight, bias, scale, ranks, outs, *ab):
        n = len(ranks)
        dtype = weight.dtype
        xc = x.to(dtype).reshape(-1, x.shape[-1])
        a = torch.cat([p.to(dtype) for p in ab[:n]]) if n > 1 else ab[0].to(dtype)
        b = torch.block_diag(*[p.to(dtype) for p in ab[n:]]) if n > 1 else ab[1].to(dtype)
        y = torch.mm(xc, weight.t()) if bias is None else torch.addmm(bias, xc, weight.t())
        h = torch.mm(xc, a.t())
        y.addmm_(h, b.t(), alpha=scale)
        ctx.save_for_backward(xc, weight, a, b, h)
        ctx.scale, ctx.ranks, ctx.outs, ctx.x_dtype, ctx.x_shape = scale, ranks, outs, x.dtype, x.shape
        ctx.param_dtypes = [p.dtype for p in ab]
        return y.view(*x.shape[:-1], y.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        xc, weight, a, b, h = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1]).to(weight.dtype)
        gh = torch.mm(g, b).mul_(ctx.scale)  # gradient at x A^T, scale included
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.mm(g, weight).addmm_(gh, a).to(ctx.x_dtype).view(ctx.x_shape)
        grad_a = torch.mm(gh.t(), xc)
        grads_a = grad_a.split(list(ctx.ranks))
        grads_b, col, row = [], 0, 0
        for rank, out in zip(ctx.ranks, ctx.outs):
            grads_b.append(torch.mm(g[:, row:row + out].t(), h[:, col:col + rank]).mul_(ctx.scale))
            col, row = col + rank, row + out
        dtypes = ctx.param_dtypes
        return (grad_x, None, None, None, None, None,
                *[t.to(dt) for t, dt in zip(grads_a + tuple(grads_b), dtypes)])


class _Group:
    """Modules (PEFT LoRA Linear layers) that read the same input, computed together."""

    def __init__(self, modules):
        bases = [m.base_layer for m in modules]
        weight = torch.cat([b.weight.data for b in bases])
        row = 0
        for base in bases:  # each module's weight becomes a view into the joint one
            out = base.weight.shape[0]
            base.weight.data = weight[row:row + out]
            row += out
        self.weight = weight
        self.bias = None if bases[0].bias is None else torch.cat([b.bias.data for b in bases]).to(weight.dtype)
        self.a = [m.lora_A["default"].weight for m in modules]
        self.b = [m.lora_B["default"].weight for m in modules]
        self.scale = float(modules[0].scaling["default"])
        self.ranks = tuple(p.shape[0] for p in self.a)
        self.outs = tuple(b.weight.shape[0] for b in bases)

    def __call__(self, x):
        y = _LoraGroup.apply(x, self.weight, self.bias, self.scale, self.ranks, self.outs, *self.a, *self.b)
        return y.split(list(self.outs), dim=-1) if len(self.outs) > 1 else y


def _fusable(module) -> bool:
    adapters = getattr(module, "lora_A", None)
    if adapters is None or list(adapters.keys()) != ["default"] or getattr(module, "merged", False):
        return False
    dropout = module.lora_dropout["default"]
    return (isinstance(dropout, torch.nn.Identity) and not module.use_dora.get("default", False)
            and isinstance(module.base_layer, torch.nn.Linear))


def fuse(model, bf16: bool = False) -> int:
    """Redirect the LoRA layers of Llama-style decoder layers to grouped computation.

    Returns how many decoder layers were fused; layers of another shape (or with LoRA
    dropout, DoRA, several adapters) keep PEFT's own forward. With `bf16`, the rotary
    cos/sin tables are bf16 too, so q and k (bf16 out of their matmul) are rotated in bf16
    rather than promoted to fp32 and cast back by autocast for the attention matmul, as
    Hugging Face runs a model loaded in bf16."""
    inner = model.get_base_model().model
    rotary = getattr(inner, "rotary_emb", None)
    if bf16 and rotary is not None:
        rotary.register_forward_hook(lambda module, args, out: tuple(t.to(torch.bfloat16) for t in out))
    fused = 0
    for layer in inner.layers:
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        names = ATTENTION + ("o_proj",)
        if attn is None or mlp is None or not all(_fusable(getattr(attn, n, None)) for n in names):
            continue
        if not all(_fusable(getattr(mlp, n, None)) for n in MLP_IN + ("down_proj",)):
            continue
        scales = {float(getattr(attn, n).scaling["default"]) for n in names}
        scales |= {float(getattr(mlp, n).scaling["default"]) for n in MLP_IN + ("down_proj",)}
        if len(scales) != 1:
            continue
        _fuse_attention(attn)
        _fuse_mlp(mlp)
        fused += 1
    return fused


def _fuse_attention(attn) -> None:
    qkv, out = _Group([getattr(attn, n) for n in ATTENTION]), _Group([attn.o_proj])
    q_proj, k_proj, v_proj = (getattr(attn, n) for n in ATTENTION)
    original = {n: getattr(attn, n).forward for n in ATTENTION}
    stash = []  # (input, k, v) between the q call that computes all three and the k, v calls

    def q_forward(x):
        q, k, v = qkv(x)
        stash[:] = [x, k, v]
        return q

    def k_forward(x):
        return stash[1] if stash and stash[0] is x else original["k_proj"](x)

    def v_forward(x):
        if stash and stash[0] is x:
            v = stash[2]
            stash.clear()
            return v
        return original["v_proj"](x)

    q_proj.forward, k_proj.forward, v_proj.forward = q_forward, k_forward, v_forward
    attn.o_proj.forward = out


def _fuse_mlp(mlp) -> None:
    gate_up, down = _Group([mlp.gate_proj, mlp.up_proj]), _Group([mlp.down_proj])
    act = mlp.act_fn

    def forward(x):
        gate, up = gate_up(x)
        return down(act(gate) * up)

    mlp.forward = forward
