"""How much of a base model the local trainer's LoRA trains: counted on an empty (meta-device)
copy built from the model's config, so it costs no weights and no memory.

The trainer's own LoRA settings (`TrainConfig.lora_r`, `lora_alpha`, all linear layers) are
the one source; this only counts what they add.
"""
from __future__ import annotations

import warnings
from dataclasses import fields
from pathlib import Path


def lora_defaults() -> dict:
    """The LoRA fields of the trainer's TrainConfig, with their defaults."""
    from ftutils.local.trainer import TrainConfig

    return {f.name: f.default for f in fields(TrainConfig) if f.name.startswith("lora_")}


def trainable_parameters(model_id: str, data_dir=None) -> dict:
    """{"trainable", "total", "share", **lora settings} for a local base model trained with
    the trainer's default LoRA settings."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from ftutils import home
    from ftutils.local import base_models

    data_dir = Path(data_dir or home.data_dir())
    if model_id == base_models.TINY:  # anything else trains SmolLM2 here (OpenAI ids too, by default)
        config = base_models.tiny_config()
    else:
        config = AutoConfig.from_pretrained(base_models._smollm2_folder(data_dir))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    lora = lora_defaults()
    with warnings.catch_warnings():  # peft calls a transformers method that warns of its own rename
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(model, LoraConfig(r=lora["lora_r"], lora_alpha=lora["lora_alpha"],
                                                      target_modules="all-linear", task_type="CAUSAL_LM"))
    trainable, total = peft_model.get_nb_trainable_parameters()
    return {"trainable": trainable, "total": total, "share": trainable / total, **lora}
