"""OpenAI's Cookbook notebook `How_to_finetune_chat_models`, its calls as it writes them, run
against a real local server with only OPENAI_BASE_URL and OPENAI_API_KEY set: its
`gpt-4o-mini-2024-07-18` trains locally (mapped to tiny-smollm2 here, for speed, through
FTUTILS_MODEL_ALIASES; the default maps it to smollm2-135m-instruct).

The recipes below are written for this test in the notebook's shape (title, ingredients,
NER); the notebook's RecipeNLG extract is not redistributed here.
"""
from __future__ import annotations

import base64
import csv
import io
import json
import os
import time

import openai
import pytest

from tests.conftest import start_server, stop_server
from tests.local.helpers import warm_model_cache

ALIASES = {"*": "tiny-smollm2"}
RECIPES = [
    ("No-Bake Nut Cookies", ["1 c. brown sugar", "1/2 c. evaporated milk", "1/2 tsp. vanilla"],
     ["brown sugar", "milk", "vanilla"]),
    ("Creamy Corn", ["2 pkg. frozen corn", "1 pkg. cream cheese", "1/3 c. butter"], ["frozen corn", "cream cheese", "butter"]),
    ("Chicken Funny", ["1 large whole chicken", "2 cans chicken gravy"], ["chicken", "chicken gravy"]),
    ("Reeses Cups", ["1 c. peanut butter", "3/4 c. graham cracker crumbs"], ["peanut butter", "graham cracker crumbs"]),
    ("Cheeseburger Potato Soup", ["6 baking potatoes", "1 lb. ground beef"], ["baking potatoes", "ground beef"]),
    ("Rhubarb Coffee Cake", ["1 1/2 c. sugar", "1/2 c. butter", "1 egg"], ["sugar", "butter", "egg"]),
    ("Scalloped Corn", ["1 can cream-style corn", "1 can whole kernel corn"], ["cream-style corn", "whole kernel corn"]),
    ("Nolan'S Pepper Steak", ["1 1/2 lb. round steak", "1 Tbsp. salt"], ["round steak", "salt"]),
    ("Millionaire Pie", ["1 large container Cool Whip", "1 large can crushed pineapple"], ["Cool Whip", "crushed pineapple"]),
    ("Double Cherry Delight", ["1 can dark sweet pitted cherries", "1/2 c. ginger ale"], ["cherries", "ginger ale"]),
    ("Buckeye Candy", ["1 box powdered sugar", "8 oz. soft butter"], ["powdered sugar", "butter"]),
    ("Quick Barbecue Wings", ["chicken wings", "barbecue sauce"], ["chicken wings", "barbecue sauce"]),
    ("Beef Brisket", ["4 lb. beef brisket", "1 c. catsup", "1 c. water"], ["beef brisket", "catsup", "water"]),
]
system_message = "You are a helpful recipe assistant. You are to extract the generic ingredients from each of the recipes provided."


def create_user_message(row):
    return f"""Title: {row['title']}\n\nIngredients: {row['ingredients']}\n\nGeneric ingredients: """


def prepare_example_conversation(row):
    messages = []
    messages.append({"role": "system", "content": system_message})
    user_message = create_user_message(row)
    messages.append({"role": "user", "content": user_message})
    messages.append({"role": "assistant", "content": row["NER"]})
    return {"messages": messages}


def write_jsonl(data_list: list, filename: str) -> None:
    with open(filename, "w") as out:
        for ddict in data_list:
            jout = json.dumps(ddict) + "\n"
            out.write(jout)


@pytest.fixture(scope="module")
def aliased_server(local_server, tmp_path_factory):
    data = tmp_path_factory.mktemp("cookbook") / "data"
    warm_model_cache(local_server.data_dir, data)
    server = start_server(data, env={"FTUTILS_MODEL_ALIASES": json.dumps(ALIASES)})
    yield server
    stop_server(server)


@pytest.fixture()
def cookbook_env(aliased_server, monkeypatch, tmp_path):
    """The two variables a reader sets, and nothing else of ours."""
    monkeypatch.setenv("OPENAI_BASE_URL", aliased_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", aliased_server.api_key)
    monkeypatch.chdir(tmp_path)
    rows = [{"title": t, "ingredients": json.dumps(i), "NER": json.dumps(n)} for t, i, n in RECIPES]
    return rows


def test_the_cookbook_flow_runs_unchanged(cookbook_env, aliased_server):
    recipe_df = cookbook_env
    # --- the notebook's cells, as it writes them (the client from the environment) ----------
    OPENAI_API_KEY = os.getenv("OPENAI_API_KEY", "")
    client = openai.OpenAI(api_key=OPENAI_API_KEY)

    training_data = [prepare_example_conversation(row) for row in recipe_df[:10]]
    validation_data = [prepare_example_conversation(row) for row in recipe_df[10:12]]
    training_file_name = "tmp_recipe_finetune_training.jsonl"
    write_jsonl(training_data, training_file_name)
    validation_file_name = "tmp_recipe_finetune_validation.jsonl"
    write_jsonl(validation_data, validation_file_name)

    with open(training_file_name, "rb") as training_fd:
        training_response = client.files.create(file=training_fd, purpose="fine-tune")
    training_file_id = training_response.id
    with open(validation_file_name, "rb") as validation_fd:
        validation_response = client.files.create(file=validation_fd, purpose="fine-tune")
    validation_file_id = validation_response.id

    response = client.fine_tuning.jobs.create(
        training_file=training_file_id,
        validation_file=validation_file_id,
        model="gpt-4o-mini-2024-07-18",
        suffix="recipe-ner",
    )
    job_id = response.id
    assert response.status == "validating_files" and response.model == "gpt-4o-mini-2024-07-18"

    # The notebook re-runs its retrieve cell by hand until the job is done; a bounded loop here.
    deadline = time.monotonic() + 300
    while True:
        response = client.fine_tuning.jobs.retrieve(job_id)
        if response.status in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert response.status == "succeeded", response.error

    response = client.fine_tuning.jobs.list_events(job_id)
    events = response.data
    events.reverse()
    messages = [event.message for event in events]

    response = client.fine_tuning.jobs.retrieve(job_id)
    fine_tuned_model_id = response.fine_tuned_model
    if fine_tuned_model_id is None:
        raise RuntimeError("Fine-tuned model ID not found. Your job has likely not been completed yet.")

    test_row = recipe_df[12]
    test_messages = []
    test_messages.append({"role": "system", "content": system_message})
    user_message = create_user_message(test_row)
    test_messages.append({"role": "user", "content": user_message})
    response = client.chat.completions.create(
        model=fine_tuned_model_id, messages=test_messages, temperature=0, max_tokens=500
    )
    answer = response.choices[0].message.content

    # --- what it got ------------------------------------------------------------------------
    assert fine_tuned_model_id == f"ft:gpt-4o-mini-2024-07-18:local:recipe-ner:{job_id.removeprefix('ftjob-')[:8]}"
    assert messages[-2:] == [f"New fine-tuned model created: {fine_tuned_model_id}", "The job has successfully completed"]
    every = [event.message for event in client.fine_tuning.jobs.list_events(job_id)]  # all pages, newest first
    assert "gpt-4o-mini-2024-07-18 is trained locally as tiny-smollm2 (its alias on this server)" in every
    assert any(m.startswith("Step 10/") and "validation loss=" in m for m in every)
    assert isinstance(answer, str) and answer and response.model == fine_tuned_model_id
    # The fine-tune answers from its own weights, not its base's.
    base = client.chat.completions.create(model="tiny-smollm2", messages=test_messages, temperature=0, max_tokens=20)
    tuned = client.chat.completions.create(model=fine_tuned_model_id, messages=test_messages, temperature=0,
                                           max_tokens=20)
    assert tuned.choices[0].message.content != base.choices[0].message.content


def test_the_alias_answers_from_its_base_and_says_so(cookbook_env, aliased_server):
    client = openai.OpenAI()
    messages = [{"role": "user", "content": "Hi"}]
    alias = client.chat.completions.create(model="gpt-4.1-nano", messages=messages, temperature=0, max_tokens=6)
    base = client.chat.completions.create(model="tiny-smollm2", messages=messages, temperature=0, max_tokens=6)
    assert alias.model == "gpt-4.1-nano" and alias.choices[0].message.content == base.choices[0].message.content
    owners = {m.id: m.owned_by for m in client.models.list().data}
    assert owners["gpt-4o-mini-2024-07-18"] == owners["gpt-3.5-turbo"] == "alias of tiny-smollm2"
    assert owners["tiny-smollm2"] == "ftutils"
    line = next(x for x in aliased_server.log.read_text().splitlines() if "listening on" in x)
    assert "gpt-4o-mini-2024-07-18" in line and "-> tiny-smollm2" in line
    with pytest.raises(openai.BadRequestError) as exc:
        client.fine_tuning.jobs.create(model="gpt-5-turbo-nonesuch", training_file="file-x")
    error = exc.value.response.json()["error"]
    assert (error["code"], error["param"]) == ("model_not_available", "model")
    assert "gpt-4o-mini-2024-07-18" in error["message"] and "tiny-smollm2" in error["message"]


def test_result_file_is_base64_csv_with_validation_even_for_a_short_job(cookbook_env, aliased_server, tmp_path):
    client = openai.OpenAI()
    rows = cookbook_env
    write_jsonl([prepare_example_conversation(r) for r in rows[:10]], "train.jsonl")
    write_jsonl([prepare_example_conversation(r) for r in rows[10:12]], "valid.jsonl")
    train = client.files.create(file=open("train.jsonl", "rb"), purpose="fine-tune")
    valid = client.files.create(file=open("valid.jsonl", "rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train.id, validation_file=valid.id,
                                         hyperparameters={"n_epochs": 2, "batch_size": 4})
    deadline = time.monotonic() + 300
    while job.status not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    [result_id] = job.result_files
    # OpenAI's own reader, as its docs write it.
    decoded_content = base64.b64decode(client.files.content(result_id).read()).decode("utf-8")
    table = list(csv.DictReader(io.StringIO(decoded_content)))
    assert list(table[0]) == ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy",
                              "full_valid_loss", "full_valid_mean_token_accuracy"]
    assert [r["step"] for r in table] == ["1", "2", "3", "4", "5", "6"]  # 3 batches of 4 (10 rows) x 2 epochs
    assert [r["step"] for r in table if r["full_valid_loss"]] == ["3", "6"]  # epoch ends
    assert [r["step"] for r in table if r["valid_loss"]] == ["3", "6"]  # under eval_every steps, still measured
    assert all(len(r["train_loss"].split(".")[-1]) <= 5 for r in table)
    from ftutils.train import metrics
    assert metrics.read_result_file(client, result_id)["full_valid_loss"].notna().sum() == 2
