"""Transformers compatibility shims: one place that knows how versions differ.

transformers 5 renamed `forward(past_key_values=...)` to `cache=` (and the output's field);
training's shared prefix and inference's KV cache both pass one, through these.
"""
from __future__ import annotations

import inspect

_forward_params: dict[type, dict] = {}  # model class -> its forward()'s parameters


def forward_params(model) -> dict:
    """`model.forward`'s parameters, read once per model class."""
    if type(model) not in _forward_params:
        _forward_params[type(model)] = inspect.signature(model.forward).parameters
    return _forward_params[type(model)]


def cache_argument(model, cache) -> dict:
    """The keyword that hands `model.forward` a KV cache, under this version's name."""
    return {"cache" if "cache" in forward_params(model) else "past_key_values": cache}


def returned_cache(out):
    """The KV cache a forward pass returned, under either name."""
    cache = out.get("cache")
    return cache if cache is not None else out.get("past_key_values")
