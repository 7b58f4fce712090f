"""How far a LoRA fine-tune moved the weights: for every adapted layer, the size of its update
(alpha / r) * B @ A against the size of the frozen weight W it is added to, read from the
adapter file a local job wrote (`DATA_DIR/jobs/<job id>/final/`) and the base model's weights.

Sizes are Frobenius norms (the square root of the sum of squared entries). ||BA|| is computed
from the two thin factors without forming the full matrix: ||BA||^2 = sum((B^T B) * (A A^T)).
OpenAI does not hand out its adapters, so this is a local-backend lesson.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

LAYER = re.compile(r"layers\.(\d+)\.(?:[a-z_]+\.)?([a-z_]+_proj)\.lora_([AB])\.weight$")


def job_adapter(job_id: str, data_dir: str | Path | None = None) -> Path:
    """The final adapter folder of a local job (the layout docs/architecture.md describes)."""
    from ftutils import home

    folder = Path(data_dir or home.data_dir()) / "jobs" / job_id / "final"
    if not (folder / "adapter_model.safetensors").is_file():
        raise FileNotFoundError(f"{folder}: no adapter_model.safetensors (is {job_id} a finished local job?)")
    return folder


def _base_weights(config: dict, adapter_dir: Path) -> Path | None:
    base = Path(str(config.get("base_model_name_or_path") or ""))
    for candidate in (base / "model.safetensors", adapter_dir / "base_model.safetensors"):
        if candidate.is_file():
            return candidate
    return None


def update_sizes(adapter_dir: str | Path) -> pd.DataFrame:
    """One row per adapted weight: layer, module, update_norm (||(alpha/r) BA||), weight_norm
    (||W||, NaN when the base weights are not on disk, e.g. the random test model) and relative
    (update over weight), in layer order."""
    import torch
    from safetensors import safe_open

    adapter_dir = Path(adapter_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    factors: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    with safe_open(str(adapter_dir / "adapter_model.safetensors"), "pt") as f:
        for key in f.keys():
            match = LAYER.search(key)
            if match:
                layer, module, which = int(match[1]), match[2], match[3]
                factors.setdefault((layer, module), {})[which] = f.get_tensor(key).float()
                factors[(layer, module)].setdefault("key", key)
    base_path = _base_weights(config, adapter_dir)
    base = safe_open(str(base_path), "pt") if base_path else None
    rows = []
    for (layer, module), ab in sorted(factors.items()):
        a, b = ab["A"], ab["B"]
        update = scale * float(((b.T @ b) * (a @ a.T)).sum().clamp(min=0).sqrt())
        weight = float("nan")
        if base is not None:
            name = re.sub(r"^base_model\.model\.", "", ab["key"]).replace(".lora_A.weight", ".weight").replace(".lora_B.weight", ".weight")
            if name in base.keys():
                weight = float(base.get_tensor(name).float().norm())
        rows.append({"layer": layer, "module": module, "update_norm": update, "weight_norm": weight,
                     "relative": update / weight if weight == weight and weight else float("nan")})
    return pd.DataFrame(rows, columns=["layer", "module", "update_norm", "weight_norm", "relative"])


def summary(sizes: pd.DataFrame) -> dict:
    """The median and largest relative update, and where the largest is."""
    rel = sizes["relative"].dropna()
    if not len(rel):
        return {"n": int(len(sizes)), "median": None, "max": None, "where": None}
    top = sizes.loc[rel.idxmax()]
    return {"n": int(len(sizes)), "median": float(rel.median()), "max": float(rel.max()),
            "where": f"layer {int(top.layer)} {top.module}"}
