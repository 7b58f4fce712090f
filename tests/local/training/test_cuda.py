"""The training loop on a GPU: a device per process, bf16 where the GPU has it, NCCL between
processes. These run wherever CUDA is present and skip elsewhere, saying why (the only skips the
suite allows); `bash scripts/gpu_check.sh` times a whole job on one."""
from __future__ import annotations

import subprocess

import pytest
import torch

from ftutils.local.training import loop, parallel, speed
from tests.conftest import ROOT
from tests.local.sinks import RecordingSink
from tests.local.training.conftest import config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU: torch.cuda.is_available() is False on this machine")


def test_a_job_trains_on_the_gpu_as_on_the_cpu(files, ml_data_dir, tmp_path, full_run, monkeypatch):
    held = {}
    real = loop.load_base

    def load_and_keep(*args):
        held["model"], tokenizer = real(*args)
        return held["model"], tokenizer
    monkeypatch.setattr(loop, "load_base", load_and_keep)
    sink = RecordingSink()
    result = loop.train(config(files, ml_data_dir, tmp_path, use_bf16="auto"), sink)
    assert next(held["model"].parameters()).device.type == "cuda"
    assert speed.want_bf16("auto", torch.device("cuda")) == torch.cuda.is_bf16_supported()
    _, on_cpu, _, _ = full_run
    assert result.steps == len(on_cpu.metrics)
    for gpu, cpu in zip(sink.metrics, on_cpu.metrics, strict=True):  # bf16 on one side at most: its rounding
        assert gpu["train_loss"] == pytest.approx(cpu["train_loss"], rel=5e-2)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs for NCCL between processes")
def test_two_processes_share_batches_over_nccl(files, ml_data_dir, tmp_path):
    assert parallel.backend() == "nccl"
    runs = [RecordingSink(), RecordingSink()]
    for processes, sink in zip((1, 2), runs):
        loop.train(config(files, ml_data_dir, tmp_path / str(processes), processes=processes), sink)
    for two, one in zip(runs[1].metrics, runs[0].metrics, strict=True):
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=2e-2)


@pytest.mark.slow
def test_gpu_check_trains_serves_and_times_the_walkthrough_job():
    out = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "tok/s" in out.stdout and "GPU memory" in out.stdout and "held-out exact label" in out.stdout
