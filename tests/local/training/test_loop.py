"""The LoRA training loop on the tiny model: batching, learning, reproducibility, checkpoints."""
from __future__ import annotations

import random

import pytest
import torch
from safetensors.torch import load_file

from ftutils.local.models import chat_format, loading
from ftutils.local.training import loop
from ftutils.local.training.config import STATE_FILE
from ftutils.local.training.examples import read_jsonl
from ftutils.local.training.loop import train
from tests.local.sinks import RecordingSink
from tests.local.training.conftest import config

def test_epoch_batches_are_length_grouped_permutations():
    rng = random.Random(1)
    lengths = [rng.randint(5, 200) for _ in range(103)]
    batches = loop.epoch_batches(lengths, 8, seed=5, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(103))
    assert batches == loop.epoch_batches(lengths, 8, seed=5, epoch=0)
    assert batches != loop.epoch_batches(lengths, 8, seed=5, epoch=1)
    assert batches != loop.epoch_batches(lengths, 8, seed=6, epoch=0)
    padding = sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)
    order = list(range(103))
    random.Random(0).shuffle(order)
    naive = [order[i:i + 8] for i in range(0, 103, 8)]
    naive_padding = sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in naive)
    assert padding < naive_padding / 5


def test_training_lowers_the_loss_and_changes_only_lora_weights(full_run, ml_data_dir):
    result, sink, model, out = full_run
    losses = [m["train_loss"] for m in sink.metrics]
    assert sink.start == (12, 3, 16)
    assert result.steps == 12 and len(losses) == 12 and result.stopped is None
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 1.0
    assert sink.metrics[-1]["full_valid_loss"] < sink.checkpoints[0][3]["full_valid_loss"]

    reference = loading.tiny_model().state_dict()
    lora, base = {}, {}
    for name, param in model.named_parameters():
        (lora if "lora_" in name else base)[name] = param
    assert lora and all(p.requires_grad for p in lora.values())
    assert not any(p.requires_grad for p in base.values())
    for name, param in base.items():
        key = name.replace("base_model.model.", "").replace(".base_layer", "")
        # Under bf16 the trainer keeps frozen linear weights in bf16 (what autocast would
        # compute with anyway): unchanged means equal to the original in that dtype.
        assert torch.equal(param.detach(), reference[key].to(param.dtype)), name
    saved = load_file(result.adapter_dir / "adapter_model.safetensors")
    lora_b = [v for k, v in saved.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero


def test_metrics_follow_openais_records(full_run):
    result, sink, _, _ = full_run
    for record in sink.metrics:
        assert 0 <= record["train_mean_token_accuracy"] <= 1 and record["train_loss"] > 0
        assert ("valid_loss" in record) == (record["step"] % 2 == 0)
        assert ("full_valid_loss" in record) == (record["step"] in (4, 8, 12))
    assert [(step, epoch, path.name) for step, epoch, path, _ in sink.checkpoints] == [
        (4, 1, "step-4"), (8, 2, "step-8"), (12, 3, "step-12")]
    assert result.final_metrics == sink.metrics[-1]
    assert result.adapter_dir.name == "final" and (result.adapter_dir / "adapter_config.json").exists()


def test_trained_tokens_count_every_example_once_per_epoch(full_run, files, tokenizer):
    result, _, _, _ = full_run
    per_epoch = sum(len(chat_format.encode(tokenizer, row["messages"], 1024).input_ids)
                    for row in read_jsonl(files / "train.jsonl"))
    assert result.trained_tokens == 3 * per_epoch


def test_same_seed_same_losses_other_seed_other_losses(full_run, files, ml_data_dir, tmp_path):
    _, sink, _, _ = full_run
    again = RecordingSink()
    train(config(files, ml_data_dir, tmp_path / "a", validation_file=None), again)
    assert [m["train_loss"] for m in again.metrics] == [m["train_loss"] for m in sink.metrics]
    other = RecordingSink()
    train(config(files, ml_data_dir, tmp_path / "b", validation_file=None, seed=4, n_epochs=1), other)
    assert [m["train_loss"] for m in other.metrics] != [m["train_loss"] for m in sink.metrics[:4]]


def test_pause_then_resume_continues_exactly(full_run, files, ml_data_dir, tmp_path):
    _, reference, _, _ = full_run
    paused = RecordingSink(stop_at={6: "pause"})
    result = train(config(files, ml_data_dir, tmp_path), paused)
    assert result.stopped == "pause" and result.steps == 6
    checkpoint = tmp_path / "checkpoints" / "step-6"
    assert result.adapter_dir == checkpoint and paused.checkpoints[-1][:3] == (6, 1, checkpoint)
    assert (checkpoint / STATE_FILE).exists() and (checkpoint / "adapter_model.safetensors").exists()
    assert not (tmp_path / "final").exists()

    resumed = RecordingSink()
    final = train(config(files, ml_data_dir, tmp_path, resume_from=checkpoint), resumed)
    assert final.steps == 12 and final.stopped is None
    assert [m["step"] for m in resumed.metrics] == list(range(7, 13))
    expected = [m["train_loss"] for m in reference.metrics[6:]]
    assert [m["train_loss"] for m in resumed.metrics] == pytest.approx(expected, rel=1e-5)
    assert final.trained_tokens == full_run[0].trained_tokens
    ours = load_file(final.adapter_dir / "adapter_model.safetensors")
    theirs = load_file(full_run[0].adapter_dir / "adapter_model.safetensors")
    assert all(torch.allclose(ours[k], theirs[k], atol=1e-6) for k in theirs)
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_pause_at_an_epoch_end_reuses_that_checkpoint(files, ml_data_dir, tmp_path):
    sink = RecordingSink(stop_at={4: "pause"})
    result = train(config(files, ml_data_dir, tmp_path, validation_file=None, n_epochs=2), sink)
    assert (result.stopped, result.steps, result.adapter_dir.name) == ("pause", 4, "step-4")
    assert [c[:2] for c in sink.checkpoints] == [(4, 1)]
    resumed = train(config(files, ml_data_dir, tmp_path, validation_file=None, n_epochs=2,
                           resume_from=result.adapter_dir), RecordingSink())
    assert resumed.steps == 8 and sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-4", "step-8"]


def test_cancel_stops_and_keeps_what_was_written(files, ml_data_dir, tmp_path):
    sink = RecordingSink(stop_at={5: "cancel"})
    result = train(config(files, ml_data_dir, tmp_path, validation_file=None), sink)
    assert (result.stopped, result.steps, len(sink.metrics)) == ("cancel", 5, 5)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-4"]
    assert result.adapter_dir == tmp_path / "checkpoints" / "step-4"
    assert not (tmp_path / "final").exists()


def test_config_checks_its_values(files, ml_data_dir, tmp_path):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        config(files, ml_data_dir, tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="learning_rate_multiplier must be a positive number"):
        config(files, ml_data_dir, tmp_path, learning_rate_multiplier=-1.0)
    with pytest.raises(ValueError, match="train_file .* does not exist"):
        config(files, ml_data_dir, tmp_path, train_file=tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="is not a checkpoint"):
        config(files, ml_data_dir, tmp_path, resume_from=tmp_path)
