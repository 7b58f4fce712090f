"""`ftutils migrate` between two real servers (tests/migrate/conftest.py): interrupted and
resumed, every succeeded job replayed with byte-identical files and the same settings, the
cancelled one skipped, a rerun that creates nothing, a download resumed from its .part, and
a file the source cannot give reported with everything else kept."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from ftutils.migrate import migrate
from ftutils.train.metrics import list_all_events
from tests.conftest import ROOT
from tests.migrate.conftest import TARGET_KEY, ftutils, source_client, target_client

pytestmark = pytest.mark.slow


def replays(target) -> Counter:
    """How many target jobs each source job became."""
    return Counter((j.metadata or {}).get("migrated_from") for j in target.fine_tuning.jobs.list(limit=100))


def test_an_interrupted_migration_resumes_and_replays_every_succeeded_job(servers, first_run):
    out, done, killed_code = first_run
    assert killed_code == -signal.SIGKILL  # it really was cut off mid-way
    assert done.returncode == 0, done.stdout + done.stderr
    src, tgt = source_client(servers), target_client(servers)
    state = json.loads((out / "migration.json").read_text())
    sup, dpo, cancelled = (servers.jobs[n] for n in ("supervised", "dpo", "cancelled"))
    assert state["source"] == servers.source.base_url and state["target"] == servers.target.base_url
    assert state["jobs"][cancelled.id]["status"] == "skipped" and state["jobs"][cancelled.id]["source_status"] == "cancelled"
    assert f"{cancelled.id}: skipped, it was cancelled on the source" in done.stdout
    counts = replays(tgt)
    for job in (sup, dpo):
        record = state["jobs"][job.id]
        assert record["status"] == "migrated" and counts[job.id] == 1  # one replay each, kill or not
        replay = tgt.fine_tuning.jobs.retrieve(record["target_job"])
        assert replay.status == "succeeded" and record["target_status"] == "succeeded"
        assert record["target_fine_tuned_model"] == replay.fine_tuned_model
        # The same job: model, method and hyperparameters, suffix, seed, metadata + where it came from.
        assert replay.model == job.model
        assert replay.method.model_dump(exclude_none=True) == job.method.model_dump(exclude_none=True)
        assert replay.seed == job.seed and replay.metadata == {**(job.metadata or {}), "migrated_from": job.id}
        assert replay.fine_tuned_model.split(":")[3] == job.fine_tuned_model.split(":")[3]
        # Byte for byte: the source's files, what was saved, what the target trained on.
        for role in ("training_file", "validation_file"):
            if getattr(job, role) is None:
                assert getattr(replay, role) is None
                continue
            original = src.files.content(getattr(job, role)).read()
            saved = out / job.id / record["saved"][getattr(job, role)]["path"]
            assert saved.read_bytes() == original == tgt.files.content(getattr(replay, role)).read()
            assert tgt.files.retrieve(getattr(replay, role)).filename == src.files.retrieve(getattr(job, role)).filename
        # What else the job was: everything it was created with, its events, checkpoints and result files.
        kept = json.loads((out / job.id / "job.json").read_text())
        assert kept["source"]["job"]["id"] == job.id and kept["source"]["base_url"] == servers.source.base_url
        assert set(kept["created_with"]) == {"model", "method", "suffix", "seed", "metadata", "integrations",
                                             "training_file", "validation_file"}
        events = (out / job.id / "events.jsonl").read_text().splitlines()
        assert [json.loads(e)["id"] for e in events] == [e.id for e in list_all_events(src, job.id)]
        checkpoints = json.loads((out / job.id / "checkpoints.json").read_text())
        assert {c["id"] for c in checkpoints} == {c.id for c in src.fine_tuning.jobs.checkpoints.list(job.id)}
        assert len(checkpoints) >= 1 and checkpoints[0]["metrics"] is not None
        for file_id in job.result_files:
            assert (out / job.id / record["saved"][file_id]["path"]).read_bytes() == src.files.content(file_id).read()
    assert sup.method.supervised.hyperparameters.n_epochs == 2 and dpo.method.dpo.hyperparameters.beta == 0.2
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("source job"))
    table = "\n".join(lines[header:])
    assert all(j.id in table for j in (sup, dpo, cancelled)) and table.count("succeeded") == 2


def test_a_rerun_replays_nothing_even_without_its_migration_json(servers, first_run, tmp_path):
    out, _, _ = first_run
    tgt = target_client(servers)
    before, recorded = replays(tgt), (out / "migration.json").read_text()
    names = [servers.jobs[n].id for n in ("supervised", "dpo", "cancelled")]
    again = ftutils(servers, servers.args(out, "--jobs", *names))
    assert again.returncode == 0, again.stderr
    assert f"{servers.jobs['supervised'].id}: already migrated as" in again.stdout
    assert (out / "migration.json").read_text() == recorded
    # A fresh --out: the target's jobs carry metadata.migrated_from, so they are found, not made again.
    # No --to: the target is the local server DATA_DIR/server.json names, with DATA_DIR's key.
    fresh = tmp_path / "elsewhere"
    found = subprocess.run([sys.executable, "-m", "ftutils", "migrate", "--from", servers.source.base_url,
                            "--from-key-env", "SOURCE_KEY", "--out", str(fresh), "--jobs", *names], cwd=ROOT,
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, **servers.env(), "FTUTILS_DATA_DIR": str(servers.target.data_dir),
                                "FTUTILS_API_KEY": TARGET_KEY})
    assert found.returncode == 0, found.stderr
    assert f"to {servers.target.base_url} into {fresh}" in found.stdout
    assert f"{servers.jobs['dpo'].id}: the target already has it, as " in found.stdout
    assert replays(tgt) == before
    state = json.loads((fresh / "migration.json").read_text())
    old = json.loads(recorded)
    assert all(state["jobs"][j]["target_job"] == old["jobs"][j]["target_job"] for j in names[:2])


def test_an_interrupted_download_resumes_from_its_part_file(servers, tmp_path):
    job = servers.jobs["supervised"]
    original = source_client(servers).files.content(job.training_file).read()
    name = source_client(servers).files.retrieve(job.training_file).filename
    part = tmp_path / job.id / "files" / job.training_file / f"{name}.part"
    part.parent.mkdir(parents=True)
    half = len(original) // 2
    part.write_bytes(original[:half])  # what a run killed mid-download leaves
    said = []
    summary = migrate(source_client(servers), target_client(servers), tmp_path, [job.id], log=said.append)
    assert summary.ok
    saved = json.loads((tmp_path / "migration.json").read_text())["jobs"][job.id]["saved"][job.training_file]
    assert saved["resumed_from"] == half and saved["bytes"] == len(original)  # only the rest was asked for
    assert (part.parent / name).read_bytes() == original and not part.exists()
    assert f"{job.id}: resumed {name} from byte {half}" in said


def test_a_file_the_source_cannot_give_is_reported_and_nothing_else_is_lost(servers, tmp_path):
    broken, tgt = servers.jobs["broken"], target_client(servers)
    before = replays(tgt)
    run = ftutils(servers, servers.args(tmp_path))  # every job of the source
    assert run.returncode == 1 and "Traceback" not in run.stderr
    expected = (f"error: {broken.id}: validation_file {servers.deleted_file} (validation.jsonl): the service answered "
                "HTTP 404")
    assert expected in run.stderr, run.stderr
    state = json.loads((tmp_path / "migration.json").read_text())
    record = state["jobs"][broken.id]
    assert record["status"] == "failed" and record["error"].startswith(expected.removeprefix("error: "))
    assert record["error"].endswith(f"(everything else is saved in {tmp_path / broken.id})")
    # Everything the source could give is saved; nothing was replayed for it, nor twice for the others.
    src = source_client(servers)
    assert (tmp_path / broken.id / record["saved"][broken.training_file]["path"]).read_bytes() == \
        src.files.content(broken.training_file).read()
    assert (tmp_path / broken.id / "job.json").exists() and (tmp_path / broken.id / "events.jsonl").read_text()
    assert sorted(v["role"] for v in record["saved"].values()) == ["result_file", "training_file"]
    assert replays(tgt) == before and broken.id not in before
    assert {state["jobs"][servers.jobs[n].id]["status"] for n in ("supervised", "dpo")} == {"migrated"}
    # Run again: the same report, the saved files still there, still nothing replayed.
    again = ftutils(servers, servers.args(tmp_path))
    assert again.returncode == 1 and expected in again.stderr and replays(tgt) == before
    assert (tmp_path / broken.id / record["saved"][broken.training_file]["path"]).exists()


def test_what_it_needs_is_said_before_it_starts(servers, tmp_path, monkeypatch):
    run = ftutils(servers, servers.args(tmp_path) + ["--from-key-env", "NO_SUCH_KEY"])
    assert run.returncode == 2 and run.stderr.strip() == ("error: NO_SUCH_KEY is not set: the source's key "
                                                          "(see --from-key-env)")
    # No --to and no local server running for DATA_DIR: how to get one.
    monkeypatch.setenv("FTUTILS_DATA_DIR", str(tmp_path / "nowhere"))
    run = subprocess.run([sys.executable, "-m", "ftutils", "migrate", "--from", servers.source.base_url,
                          "--from-key-env", "SOURCE_KEY"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, **servers.env()})
    assert run.returncode == 2 and "no local server is running for" in run.stderr and "ftutils serve" in run.stderr
    # The same --out for another pair of services is refused, not mixed up.
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "migration.json").write_text(json.dumps({"version": 1, "source": "https://api.openai.com/v1",
                                                               "target": "http://elsewhere/v1", "jobs": {}}))
    run = ftutils(servers, servers.args(tmp_path / "m"))
    assert run.returncode == 1 and "records a migration from https://api.openai.com/v1" in run.stderr


def test_migrate_never_imports_the_local_backend():
    code = ("import sys, ftutils.migrate, ftutils.migrate.cli; "
            "print([m for m in sys.modules if m.startswith('ftutils.local')])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
