"""Training in two processes (`training.parallel`, torch's DDP): each takes half of every batch,
they learn as one, stop together, and a helper that cannot start leaves the job to one process."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from ftutils.local.training import parallel, speed
from ftutils.local.training.config import TrainConfig
from ftutils.local.training.loop import train
from tests.local.sinks import RecordingSink
from tests.local.training.conftest import config


# Two processes add the same numbers in another order, and their matmuls see other shapes: equal to
# float rounding, which is bf16's where the CPU autocasts to it (2^-8 relative a matmul), fp32's elsewhere.
ROUNDING = 2e-2 if speed.want_bf16("auto", torch.device("cpu")) else 1e-4
# AdamW divides each gradient by its own scale, so an element whose gradient is near zero moves by
# up to a learning rate on rounding alone (fp32: 2e-4 seen after DPO's 4 steps at 4e-4).
WEIGHTS = max(ROUNDING, 1e-3)


def test_two_processes_share_each_batch_and_learn_as_one(full_run, files, ml_data_dir, tmp_path):
    result, reference, _, _ = full_run
    sink = RecordingSink()
    shared = train(config(files, ml_data_dir, tmp_path, processes=2), sink)
    assert (shared.steps, shared.trained_tokens, shared.adapter_dir) == (result.steps, result.trained_tokens,
                                                                         tmp_path / "final")
    # Each process takes half of every batch; DDP's summed gradients give the one-process step.
    for ours, theirs in zip(sink.metrics, reference.metrics, strict=True):
        assert ours.keys() == theirs.keys()
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=ROUNDING)
        assert ours["train_mean_token_accuracy"] == pytest.approx(theirs["train_mean_token_accuracy"], abs=0.05)
    assert sink.metrics[-1]["full_valid_loss"] == pytest.approx(reference.metrics[-1]["full_valid_loss"], rel=ROUNDING)
    assert [c[:2] for c in sink.checkpoints] == [c[:2] for c in reference.checkpoints]
    ours = load_file(shared.adapter_dir / "adapter_model.safetensors")
    theirs = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert ours.keys() == theirs.keys() and all(torch.allclose(ours[k], theirs[k], atol=WEIGHTS) for k in theirs)


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
    # The spawned helper runs this module's function (pickled by name): it exits before meeting rank 0.
    monkeypatch.setattr(parallel, "run_helper", _helper_that_dies)
    sink = RecordingSink()
    result = train(config(files, ml_data_dir, tmp_path, processes=2, validation_file=None, n_epochs=1), sink)
    assert (result.steps, result.stopped, result.adapter_dir) == (4, None, tmp_path / "final")
    [warning] = [m for level, m in sink.messages if level == "warn"]
    assert warning.startswith("Training in one process: 2 processes could not start together") and "code 3" in warning


def test_dpo_in_two_processes_learns_as_in_one(ml_data_dir, preference_files, tmp_path):
    """The loop meets the process group through `Group` alone, so DPO shares its batches too:
    each process scores every pair's reference, then takes half of every batch. 12 pairs in
    batches of 11: each epoch's last batch is one pair, so the second process's share is empty
    and it adds zeros to DDP's sum."""
    runs = []
    for processes in (1, 2):
        sink = RecordingSink()
        config = TrainConfig(base_model="tiny-smollm2", data_dir=ml_data_dir,
                             train_file=preference_files / "train.jsonl",
                             validation_file=preference_files / "valid.jsonl", output_dir=tmp_path / f"x{processes}",
                             n_epochs=2, batch_size=11, learning_rate_multiplier=2, seed=0, method="dpo", beta=0.1,
                             processes=processes)
        runs.append((train(config, sink), sink))
    (one, alone), (two, shared) = runs
    assert (two.steps, two.trained_tokens) == (one.steps, one.trained_tokens) == (4, one.trained_tokens)
    assert any("each batch shared by 2 processes" in m for _, m in shared.messages)
    for ours, theirs in zip(shared.metrics, alone.metrics, strict=True):
        assert ours.keys() == theirs.keys()
        for key in ("train_loss", "train_reward_margin"):
            assert ours[key] == pytest.approx(theirs[key], rel=ROUNDING, abs=ROUNDING / 10)
        assert ours["train_reward_accuracy"] == pytest.approx(theirs["train_reward_accuracy"], abs=0.26)
    assert shared.metrics[-1]["full_valid_loss"] == pytest.approx(alone.metrics[-1]["full_valid_loss"], rel=ROUNDING)
    ours = load_file(two.adapter_dir / "adapter_model.safetensors")
    theirs = load_file(one.adapter_dir / "adapter_model.safetensors")
    assert ours.keys() == theirs.keys() and all(torch.allclose(ours[k], theirs[k], atol=WEIGHTS) for k in theirs)
