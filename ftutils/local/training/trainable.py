"""How much of a base model the trainer's LoRA trains: counted on an empty (meta-device) copy
built from the model's config, so it costs no weights and no memory (03_train shows it).

The trainer's own LoRA settings (`TrainConfig.lora_r`, `lora_alpha`, all linear layers) are
the one source; this only counts what they add.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from ftutils.local.training.config import lora_defaults


def trainable_parameters(model_id: str, data_dir=None) -> dict:
    """{"trainable", "total", "share", **lora settings} for the local base that trains
    `model_id` (an OpenAI id trains the default base), with the trainer's default LoRA settings."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftutils import home
    from ftutils.local.models.loading import model_config

    config = model_config(model_id, Path(data_dir or home.data_dir()))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    lora = lora_defaults()
    with warnings.catch_warnings():  # peft calls a transformers method that warns of its own rename
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(model, LoraConfig(r=lora["lora_r"], lora_alpha=lora["lora_alpha"],
                                                      target_modules="all-linear", task_type="CAUSAL_LM"))
    trainable, total = peft_model.get_nb_trainable_parameters()
    return {"trainable": trainable, "total": total, "share": trainable / total, **lora}
