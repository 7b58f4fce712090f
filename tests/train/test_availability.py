"""Before a job is created the client asks the service about the model, and a refusal reads as
one clear message. Against a real HTTP server that answers as OpenAI does for an organisation
that may no longer fine-tune (tests/train/openai_standin.py), and the real local server."""
from __future__ import annotations

import datetime
import os
import subprocess
import sys
import warnings

import openai
import pytest

from ftutils import openai_rules
from ftutils.train import availability, jobs, preference
from ftutils.train.availability import FineTuningUnavailable, FineTuningWarning
from tests.conftest import ROOT
from tests.train import openai_standin

DAY = datetime.date(2026, 12, 7)


@pytest.fixture(scope="module")
def standin_server():
    standin = openai_standin.StandIn()
    server = openai_standin.serve(standin)
    yield standin
    server.should_exit = True


@pytest.fixture()
def standin(standin_server):
    """The module's stand-in, its table, refusal and logs reset for each test."""
    fresh = openai_standin.StandIn(url=standin_server.url)
    standin_server.models, standin_server.refusal = fresh.models, fresh.refusal
    standin_server.refusal_status = 403
    standin_server.uploads.clear()
    standin_server.job_requests.clear()
    return standin_server


def standin_client(standin):
    return openai.OpenAI(api_key=openai_standin.KEY, base_url=standin.url, max_retries=0)


def test_a_refused_job_is_one_message_with_openais_words_the_dates_and_the_way_on(standin):
    client = standin_client(standin)
    with pytest.warns(FineTuningWarning, match="shuts down on 2027-01-14"):
        with pytest.raises(FineTuningUnavailable) as info:
            jobs.launch(client, "file-0001", model="gpt-4o-mini-2024-07-18", backend="openai")
    error, text = info.value, str(info.value)
    assert (error.status_code, error.code) == (403, "fine_tuning_unavailable")
    assert error.service_message == openai_standin.REFUSAL["message"]
    assert text.startswith("OpenAI refused to create the fine-tuning job (HTTP 403, code 'fine_tuning_unavailable'): "
                           f"\"{openai_standin.REFUSAL['message']}\"")
    for milestone in openai_rules.WIND_DOWN:
        assert f"{milestone.date.isoformat()} (" in text and milestone.what in text
    assert "2027-01-06 (in 30 days): no organisation can create new fine-tuning jobs" in text
    assert "FTUTILS_BACKEND=local" in text and "ftutils migrate" in text and openai_rules.DEPRECATIONS_PAGE in text
    assert isinstance(error.__cause__, openai.PermissionDeniedError)
    assert standin.job_requests[0]["model"] == "gpt-4o-mini-2024-07-18"
    # In a notebook IPython shows the message alone: its first line names the error, no traceback.
    shown = error._render_traceback_()
    assert shown[0].startswith("FineTuningUnavailable: OpenAI refused") and "\n".join(shown[1:]) in text


@pytest.mark.parametrize("status", [400, 404])
def test_other_refusals_of_the_account_or_model_read_the_same(standin, status):
    standin.refusal_status = status
    standin.refusal = {"message": "This model is not available for fine-tuning for your organization.",
                       "type": "invalid_request_error", "param": "model", "code": "model_not_available"}
    with pytest.raises(FineTuningUnavailable, match=f"HTTP {status}, code 'model_not_available'"):
        preference.launch_dpo(standin_client(standin), "file-0001", model="gpt-4.1-mini-2025-04-14",
                              backend="openai", check_model=False)
    assert standin.job_requests[0]["method"]["type"] == "dpo"


def test_a_wrong_field_keeps_openais_own_error(standin):
    with pytest.raises(openai.BadRequestError) as info:
        jobs.launch(standin_client(standin), "file-nonesuch", model="gpt-4o-mini-2024-07-18", backend="openai",
                    check_model=False)
    assert info.value.body["param"] == "training_file"


def test_only_openai_refusals_are_translated(standin):
    # The same server not taken for OpenAI (no backend said, a loopback URL): its error passes through.
    with pytest.raises(openai.PermissionDeniedError):
        jobs.launch(standin_client(standin), "file-0001", model="gpt-6-luna", check_model=False)
    assert availability.is_openai(openai.OpenAI(api_key="x"))  # api.openai.com is OpenAI
    assert not availability.is_openai(standin_client(standin))


def test_past_its_shutdown_date_on_openai_a_model_is_refused_before_anything_is_sent(standin):
    client = standin_client(standin)
    # Listed with a date that has passed: the service's own date, refused with it.
    with pytest.raises(FineTuningUnavailable) as info:
        jobs.launch(client, "file-0001", model="gpt-3.5-turbo-0125", backend="openai")
    assert str(info.value).startswith("gpt-3.5-turbo-0125 shut down on OpenAI on 2026-10-23 (45 days ago; "
                                      f"shutdown_date from OpenAI)")
    # Gone from the list: refused with the date ftutils knows.
    with pytest.raises(FineTuningUnavailable, match=r"gpt-4.1-nano-2025-04-14 shut down on OpenAI on 2026-10-23 "
                                                    r"\(45 days ago; OpenAI's deprecations page\)"):
        jobs.launch(client, "file-0001", model="gpt-4.1-nano-2025-04-14", backend="openai")
    # A date the service changed wins over the one ftutils knows.
    standin.models["gpt-4o-2024-08-06"] = "2026-12-01"
    with pytest.raises(FineTuningUnavailable, match="gpt-4o-2024-08-06 shut down on OpenAI on 2026-12-01"):
        jobs.launch(client, "file-0001", model="gpt-4o-2024-08-06", backend="openai")
    assert standin.job_requests == []
    # From 2027-01-06 no job at all: said without asking about the model.
    with pytest.raises(FineTuningUnavailable, match="OpenAI creates no new fine-tuning jobs since 2027-01-06"):
        availability.check_model(client, "gpt-4o-mini-2024-07-18", backend="openai", day=datetime.date(2027, 1, 6))


def test_a_date_still_to_come_warns_and_says_when(standin):
    client = standin_client(standin)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        checked = availability.check_model(client, "gpt-4.1-2025-04-14", backend="openai")
    assert (checked.listed, checked.shutdown_date, checked.date_source) == (True, datetime.date(2027, 1, 14), "service")
    assert [w.category for w in seen] == [FineTuningWarning]
    assert str(seen[0].message) == checked.warning
    assert checked.warning.startswith("gpt-4.1-2025-04-14 shuts down on 2027-01-14 (in 38 days, shutdown_date from "
                                      "OpenAI), and every model fine-tuned on it goes with it. OpenAI creates "
                                      "fine-tuning jobs only until 2027-01-06")
    # No date announced: only the job-creation deadline is said.
    quiet = availability.check_model(client, "gpt-6-luna", backend="openai", warn=False)
    assert quiet.shutdown_date is None and quiet.warning.startswith("OpenAI creates fine-tuning jobs only until 2027-01-06")


def test_auto_picks_a_model_still_fine_tunable_from_the_live_list(standin):
    client = standin_client(standin)
    assert availability.pick_model(client, backend="openai") == "gpt-4o-mini-2024-07-18"
    # gpt-4.1-nano is first for DPO but gone from the list; gpt-4.1-mini is next.
    assert availability.pick_model(client, "dpo", backend="openai") == "gpt-4.1-mini-2025-04-14"
    standin.models["gpt-4o-mini-2024-07-18"] = "2026-12-07"  # shuts down today: too late
    assert availability.pick_model(client, backend="openai") == "gpt-4.1-mini-2025-04-14"
    standin.models = {"gpt-6-luna": None, "gpt-3.5-turbo-0125": "2026-10-23"}
    with pytest.raises(FineTuningUnavailable) as info:
        availability.pick_model(client, backend="openai")
    text = str(info.value)
    assert text.startswith("No model can be fine-tuned with supervised on OpenAI today (2026-12-07): none of "
                           "gpt-4o-mini-2024-07-18 (not listed), ")
    assert "gpt-3.5-turbo-0125 (2026-10-23)" in text and "FTUTILS_BACKEND=local" in text
    with pytest.raises(FineTuningUnavailable, match="since 2027-01-06"):
        availability.pick_model(client, backend="openai", day=datetime.date(2027, 2, 1))


def test_auto_on_the_local_backend_is_its_own_base(client):
    assert availability.pick_model(client) == "smollm2-135m-instruct"
    assert availability.pick_model(client, "dpo") == "smollm2-135m-instruct"
    with pytest.raises(ValueError, match="method must be one of"):
        availability.pick_model(client, "reinforcement")


def test_on_the_local_backend_openais_dates_are_read_from_it_and_only_warn(client):
    # The real local server lists OpenAI's ids with OpenAI's shutdown_date; its own models with null.
    nano = availability.check_model(client, "gpt-4.1-nano-2025-04-14", warn=False)
    assert (nano.shutdown_date, nano.date_source) == (datetime.date(2026, 10, 23), "service")
    assert "OpenAI no longer serves it, but this service does, so the job goes ahead here" in nano.warning
    with pytest.warns(FineTuningWarning, match="shutdown_date 2027-01-14 .in 38 days.: the day OpenAI"):
        availability.check_model(client, "gpt-4o-mini")
    own = availability.check_model(client, "tiny-smollm2", warn=False)
    assert (own.listed, own.shutdown_date, own.date_source, own.warning) == (True, None, "service", None)


def _ftutils(args, env, timeout=120):
    return subprocess.run([sys.executable, "-m", "ftutils", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env})


def test_ftutils_train_on_openai_explains_the_refusal_without_a_traceback(standin, tmp_path):
    from tests.train.test_jobs import write_tiny

    train, _ = write_tiny(tmp_path)
    env = {"OPENAI_API_KEY": openai_standin.KEY, "OPENAI_BASE_URL": standin.url}
    proc = _ftutils(["train", str(train), "--no-watch"], env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("warning: gpt-4o-mini-2024-07-18 shuts down on 2027-01-14")  # auto's pick
    assert "error: OpenAI refused to create the fine-tuning job (HTTP 403, code 'fine_tuning_unavailable')" in proc.stderr
    assert "FTUTILS_BACKEND=local" in proc.stderr
    assert standin.uploads == ["train.jsonl"]
    # A shut-down model, or a day after job creation ended: refused before the upload.
    standin.uploads.clear()
    proc = _ftutils(["train", str(train), "--model", "gpt-4.1-nano-2025-04-14"], env)
    assert proc.returncode == 1 and "error: gpt-4.1-nano-2025-04-14 shut down on OpenAI on 2026-10-23" in proc.stderr
    proc = _ftutils(["train", str(train), "--model", "gpt-4o-mini-2024-07-18"], {**env, "FTUTILS_TODAY": "2027-01-07"})
    assert proc.returncode == 1 and "error: OpenAI creates no new fine-tuning jobs since 2027-01-06" in proc.stderr
    assert "Traceback" not in proc.stderr and standin.uploads == []


def test_check_on_openai_lists_only_what_can_still_be_fine_tuned_and_says_who_may(standin):
    from ftutils.train.connect import check, connect

    conn = connect("openai", api_key=openai_standin.KEY, base_url=standin.url, env_file=None)
    result = check(conn)
    assert result.ok and result.fine_tunable == ["gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14",
                                                 "gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18"]
    assert result.shutdown_dates["gpt-3.5-turbo-0125"] == "2026-10-23" and "gpt-6-luna" not in result.shutdown_dates
    assert result.notice.startswith("New fine-tuning jobs on OpenAI: only for an organisation that has fine-tuned "
                                    "before and ran a fine-tuned model in the past 60 days, and only until 2027-01-06")
    assert conn.default_model == "gpt-4o-mini-2024-07-18" and conn.auto_model("dpo") == "gpt-4.1-mini-2025-04-14"


def test_where_it_works_follows_the_day():
    today = availability.where_it_works(DAY)
    rows = dict(today.rows)
    assert rows["OpenAI, new jobs"].endswith("a new key gets a refusal")
    assert "every notebook, 01 to 06" in rows["local backend"]
    assert rows["OpenAI's Evals API and graders"].startswith("shut down on 2026-11-30")
    assert "2027-01-14 (in 38 days)" in str(today) and openai_rules.DEPRECATIONS_PAGE in today._repr_html_()
    later = dict(availability.where_it_works(datetime.date(2027, 1, 20)).rows)
    assert later["OpenAI, new jobs"] == "none for anyone since 2027-01-06"
    assert later["OpenAI, your fine-tuned models"].startswith("gone")
    early = dict(availability.where_it_works(datetime.date(2026, 6, 1)).rows)
    assert early["OpenAI, new jobs"] == "only for an organisation that has fine-tuned before, and only until 2027-01-06"


@pytest.mark.slow
def test_in_a_notebook_the_refusal_shows_as_its_message_not_a_traceback(standin):
    import nbformat
    from nbclient import NotebookClient

    cell = nbformat.v4.new_code_cell(
        "import openai\nfrom ftutils.train import jobs\n"
        f"client = openai.OpenAI(api_key={openai_standin.KEY!r}, base_url={standin.url!r}, max_retries=0)\n"
        "jobs.launch(client, 'file-0001', model='gpt-4o-2024-08-06', backend='openai', check_model=False)")
    nb = nbformat.v4.new_notebook(cells=[cell])
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(ROOT)}}).execute()
    error = next(o for o in nb.cells[0].outputs if o.output_type == "error")
    assert error.ename == "FineTuningUnavailable"
    shown = "\n".join(error.traceback)
    assert shown.startswith("FineTuningUnavailable: OpenAI refused to create the fine-tuning job (HTTP 403")
    assert "Traceback" not in shown and "File " not in shown and "FTUTILS_BACKEND=local" in shown
