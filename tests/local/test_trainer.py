"""The LoRA trainer on the tiny model: masking, learning, reproducibility, checkpoints."""
from __future__ import annotations

import itertools
import json
import random

import pytest
import torch
from safetensors.torch import load_file

from ftutils.local import base_models, chatdata, steps, trainer
from ftutils.local.trainer import TrainConfig, train
from tests.local.sinks import RecordingSink

WORDS = {"good": "positive", "great": "positive", "lovely": "positive", "bad": "negative", "awful": "negative",
         "dull": "negative"}


@pytest.fixture(scope="module")
def tokenizer(ml_data_dir):
    return base_models.load_base("tiny-smollm2", ml_data_dir)[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sentiment")
    rng = random.Random(0)
    rows = []
    for i in range(20):
        word = rng.choice(sorted(WORDS))
        rows.append({"messages": [{"role": "system", "content": "Classify the sentiment."},
                                  {"role": "user", "content": f"Review {i}: it was {word}."},
                                  {"role": "assistant", "content": WORDS[word]}]})
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:16]))
    (folder / "valid.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[16:]))
    return folder


def config(files, ml_data_dir, output_dir, **overrides):
    values = dict(base_model="tiny-smollm2", data_dir=ml_data_dir, train_file=files / "train.jsonl",
                  validation_file=files / "valid.jsonl", output_dir=output_dir, n_epochs=3, batch_size=4,
                  learning_rate_multiplier=10.0, seed=3, eval_every=2)
    return TrainConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def full_run(files, ml_data_dir, tmp_path_factory):
    """One uninterrupted run, keeping a handle on the model the trainer trained."""
    held = {}

    def load_and_keep(*args):
        held["model"], tokenizer = base_models.load_base(*args)
        return held["model"], tokenizer
    out = tmp_path_factory.mktemp("full")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer, "load_base", load_and_keep)
        sink = RecordingSink()
        result = train(config(files, ml_data_dir, out), sink)
    return result, sink, held["model"], out


def trained_text(tokenizer, encoded):
    """The decoded runs of labelled tokens, one string per contiguous run."""
    runs = itertools.groupby(zip(encoded.input_ids, encoded.labels), key=lambda pair: pair[1] != chatdata.IGNORE)
    return [tokenizer.decode([label for _, label in run]) for inside, run in runs if inside]


def test_loss_covers_exactly_the_weighted_assistant_turns(tokenizer):
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Say hi ü"},
                {"role": "assistant", "content": "Hi there, 你好!"},
                {"role": "user", "content": "Again"},
                {"role": "assistant", "content": "SKIPPED ANSWER", "weight": 0},
                {"role": "user", "content": "Call the tool"},
                {"role": "assistant", "content": None,
                 "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\": 1}"}}]}]
    encoded = chatdata.encode(tokenizer, messages, max_length=1024)

    assert trained_text(tokenizer, encoded) == [
        "Hi there, 你好!<|im_end|>", '{"name": "lookup", "arguments": "{\\"q\\": 1}"}<|im_end|>']
    full = tokenizer.decode(encoded.input_ids)
    assert full == chatdata.render(tokenizer, chatdata.normalize_messages(messages))
    masked = tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels) if label == chatdata.IGNORE])
    for text in ("Be brief.", "Say hi ü", "SKIPPED ANSWER", "<|im_start|>assistant\n", "Again"):
        assert text in masked
    assert encoded.labels[-1] == chatdata.IGNORE  # the newline after <|im_end|>
    assert not encoded.truncated


def test_default_system_prompt_is_masked_and_truncation_is_flagged(tokenizer):
    messages = [{"role": "user", "content": "word " * 50}, {"role": "assistant", "content": "done"}]
    encoded = chatdata.encode(tokenizer, messages, max_length=1024)
    assert trained_text(tokenizer, encoded) == ["done<|im_end|>"]
    assert "SmolLM" in tokenizer.decode(encoded.input_ids)  # the template's own system prompt
    short = chatdata.encode(tokenizer, messages, max_length=20)
    assert short.truncated and len(short.input_ids) == 20 and short.n_trained == 0


def test_epoch_batches_are_length_grouped_permutations():
    rng = random.Random(1)
    lengths = [rng.randint(5, 200) for _ in range(103)]
    batches = steps.epoch_batches(lengths, 8, seed=5, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(103))
    assert batches == steps.epoch_batches(lengths, 8, seed=5, epoch=0)
    assert batches != steps.epoch_batches(lengths, 8, seed=5, epoch=1)
    assert batches != steps.epoch_batches(lengths, 8, seed=6, epoch=0)
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

    reference = base_models.tiny_model().state_dict()
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
    per_epoch = sum(len(chatdata.encode(tokenizer, row["messages"], 1024).input_ids)
                    for row in chatdata.read_jsonl(files / "train.jsonl"))
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
    assert (checkpoint / trainer.STATE_FILE).exists() and (checkpoint / "adapter_model.safetensors").exists()
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


@pytest.mark.parametrize("bf16", [False, True])
def test_a_shared_system_prompt_runs_once_with_the_same_loss_and_gradients(ml_data_dir, bf16):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = base_models.load_base("tiny-smollm2", ml_data_dir)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    for name, p in model.named_parameters():  # LoRA B starts at 0: make the adapter matter
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    steps.tune_for_speed(model, bf16, 200)
    system = {"role": "system", "content": "Classify the sentiment of the review into positive or negative. "
                                           "Answer with one word and nothing else, in lower case."}
    batch = [chatdata.encode(tokenizer, [system, {"role": "user", "content": f"Review {i}: it was {word}."},
                                         {"role": "assistant", "content": label}], 512)
             for i, (word, label) in enumerate(sorted(WORDS.items()))]
    prefix = steps.shared_prefix(batch)
    assert prefix >= steps.SHARED_PREFIX_MIN and prefix < min(
        next(i for i, x in enumerate(e.labels) if x != chatdata.IGNORE) for e in batch)
    assert steps.shared_prefix(batch[:1]) == 0  # one row: nothing to share
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    params = [p for p in model.parameters() if p.requires_grad]
    results = []
    for share in (True, False):
        with pytest.MonkeyPatch.context() as patch:
            if not share:
                patch.setattr(steps, "shared_prefix", lambda examples: 0)
            model.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss, correct, n = steps.batch_loss(model, batch, pad, backward=True)
            results.append((loss, correct, n, [p.grad.detach().clone() for p in params]))
    (loss_a, correct_a, n_a, grads_a), (loss_b, correct_b, n_b, grads_b) = results
    tolerance = 2e-2 if bf16 else 1e-4
    assert n_a == n_b and correct_a == correct_b
    assert loss_a == pytest.approx(loss_b, rel=tolerance)
    flat_a, flat_b = torch.cat([g.flatten() for g in grads_a]), torch.cat([g.flatten() for g in grads_b])
    assert flat_b.abs().sum() > 0
    assert (flat_a - flat_b).norm() <= tolerance * flat_b.norm()


def test_two_processes_share_each_batch_and_learn_as_one(full_run, files, ml_data_dir, tmp_path):
    result, reference, _, _ = full_run
    sink = RecordingSink()
    shared = train(config(files, ml_data_dir, tmp_path, processes=2), sink)
    assert (shared.steps, shared.trained_tokens, shared.adapter_dir) == (result.steps, result.trained_tokens,
                                                                         tmp_path / "final")
    # Each process takes half of every batch; summed gradients give the one-process step up
    # to float rounding (bf16 matmuls on this CPU).
    for ours, theirs in zip(sink.metrics, reference.metrics, strict=True):
        assert ours.keys() == theirs.keys()
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=2e-2)
        assert ours["train_mean_token_accuracy"] == pytest.approx(theirs["train_mean_token_accuracy"], abs=0.05)
    assert sink.metrics[-1]["full_valid_loss"] == pytest.approx(reference.metrics[-1]["full_valid_loss"], rel=2e-2)
    assert [c[:2] for c in sink.checkpoints] == [c[:2] for c in reference.checkpoints]
    ours = load_file(shared.adapter_dir / "adapter_model.safetensors")
    theirs = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert ours.keys() == theirs.keys() and all(torch.allclose(ours[k], theirs[k], atol=2e-2) for k in theirs)
    assert not list(tmp_path.glob(".parallel-*"))  # the processes' meeting place is gone


def test_two_processes_stop_together_when_paused(files, ml_data_dir, tmp_path):
    import multiprocessing

    sink = RecordingSink(stop_at={3: "pause"})
    result = train(config(files, ml_data_dir, tmp_path, processes=2, validation_file=None), sink)
    assert (result.stopped, result.steps, result.adapter_dir) == ("pause", 3, tmp_path / "checkpoints" / "step-3")
    assert not multiprocessing.active_children()  # the helper ended with the job
    resumed = train(config(files, ml_data_dir, tmp_path, processes=2, validation_file=None,
                           resume_from=result.adapter_dir), RecordingSink())
    assert (resumed.steps, resumed.stopped) == (12, None)


def _helper_that_dies(*args):
    raise SystemExit(3)


def test_a_helper_that_cannot_start_leaves_the_job_to_one_process(files, ml_data_dir, tmp_path, monkeypatch):
    from ftutils.local import parallel

    # The spawned helper runs this module's function (pickled by name): it exits before meeting rank 0.
    monkeypatch.setattr(parallel, "_helper", _helper_that_dies)
    sink = RecordingSink()
    result = train(config(files, ml_data_dir, tmp_path, processes=2, validation_file=None, n_epochs=1), sink)
    assert (result.steps, result.stopped, result.adapter_dir) == (4, None, tmp_path / "final")
    [warning] = [m for level, m in sink.messages if level == "warn"]
    assert warning.startswith("Training in one process: 2 processes could not start together") and "code 3" in warning
    assert not list(tmp_path.glob(".parallel-*"))
