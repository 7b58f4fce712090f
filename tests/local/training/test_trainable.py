"""The share of a base model that the trainer's LoRA trains, counted without loading weights."""
from ftutils.local.training import trainable
from ftutils.local.training.config import TrainConfig


def test_counts_what_the_trainers_lora_adds(tmp_path):
    info = trainable.trainable_parameters("tiny-smollm2", tmp_path)
    assert info["lora_r"] == TrainConfig.__dataclass_fields__["lora_r"].default
    # tiny-smollm2: 2 layers of q,k,v,o (64->64, 64->32, 64->32, 64->64) and gate, up, down (64<->128).
    per_layer = sum(info["lora_r"] * (i + o) for i, o in ((64, 64), (64, 32), (64, 32), (64, 64),
                                                          (64, 128), (64, 128), (128, 64)))
    assert info["trainable"] == 2 * per_layer
    assert info["total"] > info["trainable"] and info["share"] == info["trainable"] / info["total"]
