"""DPO on the tiny model: the loss's value at the start, learning, metrics, checkpoints (the
same jobs through the API are in tests/local/e2e/test_dpo_jobs.py)."""
from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from ftutils.local.models import chat_format, loading
from ftutils.local.training import dpo, examples
from ftutils.local.training.config import TrainConfig
from ftutils.local.training.loop import train
from tests.local.sinks import RecordingSink

@pytest.fixture(scope="module")
def run(preference_files, ml_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("dpo-run")
    sink = RecordingSink()
    config = TrainConfig(base_model="tiny-smollm2", data_dir=ml_data_dir,
                         train_file=preference_files / "train.jsonl", validation_file=preference_files / "valid.jsonl",
                         output_dir=out, n_epochs=3, batch_size=4,
                         learning_rate_multiplier=2, seed=0, method="dpo", beta=0.1)
    return train(config, sink), sink


def test_dpo_loss_starts_at_ln2_and_falls(run):
    result, sink = run
    losses = [m["train_loss"] for m in sink.metrics]
    assert result.stopped is None and result.steps == 9 == len(losses)
    assert losses[0] == pytest.approx(math.log(2), abs=0.02)  # adapter zero: policy == reference
    assert sum(losses[-3:]) / 3 < losses[0] - 0.1
    assert sink.metrics[-1]["train_reward_accuracy"] >= 0.75
    assert sink.metrics[-1]["train_reward_margin"] > 0
    lora_b = [v for k, v in load_file(result.adapter_dir / "adapter_model.safetensors").items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)


def test_dpo_metrics_checkpoints_and_validation(run):
    _, sink = run
    assert [(step, epoch) for step, epoch, _, _ in sink.checkpoints] == [(3, 1), (6, 2), (9, 3)]
    for step, _, path, metrics in sink.checkpoints:
        assert (path / "adapter_model.safetensors").is_file()
        assert metrics["step"] == step
        assert {"full_valid_loss", "valid_loss", "full_valid_reward_accuracy"} <= metrics.keys()
    first = sink.checkpoints[0][3]["full_valid_loss"]
    assert first < math.log(2)  # held-out pairs already lean the preferred way after one epoch
    assert sink.metrics[-1]["full_valid_loss"] < first
    assert {"step", "train_loss", "train_mean_token_accuracy", "train_reward_accuracy",
            "train_reward_margin"} <= sink.metrics[0].keys()


def test_equal_policy_and_reference_give_exactly_ln2(preference_files, ml_data_dir):
    """The formula itself, in fp32: a fresh adapter (B = 0) changes nothing, so every margin is 0."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model, tokenizer = loading.load_base("tiny-smollm2", ml_data_dir)
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    pairs = examples.load_pairs(preference_files / "train.jsonl", tokenizer, 512, RecordingSink(), "training")[:4]
    objective = dpo.Dpo(beta=0.5)
    objective.prepare(model, pairs, tokenizer.eos_token_id)
    metrics = objective.metrics(objective.loss(model, pairs, pairs, tokenizer.eos_token_id, backward=False))
    assert metrics["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert metrics["reward_margin"] == pytest.approx(0, abs=1e-6)


def test_pairs_label_only_their_reply(preference_files, ml_data_dir):
    tokenizer = loading.load_base("tiny-smollm2", ml_data_dir)[1]
    row = {"input": {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Earlier turn"},
                                  {"role": "user", "content": "Bye"}]},
           "preferred_output": [{"role": "assistant", "content": "Goodbye!"}],
           "non_preferred_output": [{"role": "assistant", "content": "Whatever."}]}
    pair = examples.encode_pair(tokenizer, row, 512)
    for encoded, reply in ((pair.chosen, "Goodbye!"), (pair.rejected, "Whatever.")):
        labelled = [t for t in encoded.labels if t != chat_format.IGNORE]
        assert tokenizer.decode(labelled) == reply + tokenizer.eos_token  # not "Earlier turn"
    assert row["input"]["messages"][1] == {"role": "assistant", "content": "Earlier turn"}


def test_method_and_beta_are_checked(preference_files, ml_data_dir):
    base = dict(base_model="tiny-smollm2", data_dir=ml_data_dir, train_file=preference_files / "train.jsonl",
                output_dir=preference_files, n_epochs=1, batch_size=1, learning_rate_multiplier=1, seed=0)
    with pytest.raises(ValueError, match="method must be"):
        TrainConfig(**base, method="reinforcement")
    with pytest.raises(ValueError, match="beta must be"):
        TrainConfig(**base, method="dpo", beta=0)
