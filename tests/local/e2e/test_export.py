"""`ftutils export`: a tiny real fine-tune leaves as a PEFT adapter and as a merged folder,
and both answer exactly as the server does."""
from __future__ import annotations

import json

import pytest

from ftutils.cli import main
from tests.local.helpers import chat_lines, wait_for, write_jsonl

PROMPT = [{"role": "user", "content": "Greet Ann"}]
MAX_TOKENS = 8


@pytest.fixture(scope="module")
def fine_tuned(local_server, tmp_path_factory):
    client = local_server.client(max_retries=0)
    path = write_jsonl(tmp_path_factory.mktemp("export") / "train.jsonl", chat_lines(12))
    train = client.files.create(file=path.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="tiny-smollm2", training_file=train.id, suffix="export",
                                         hyperparameters={"n_epochs": 3, "learning_rate_multiplier": 5})
    job = wait_for(client, job.id, ("succeeded", "failed", "cancelled"), timeout=300)
    assert job.status == "succeeded", job.error
    return job.fine_tuned_model


def server_answer(api, model: str) -> str:
    out = api.chat.completions.create(model=model, messages=PROMPT, max_tokens=MAX_TOKENS, temperature=0)
    return out.choices[0].message.content


def greedy(model, tokenizer) -> str:
    import torch

    ids = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=MAX_TOKENS, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_merged_folder_loads_in_plain_transformers_and_answers_as_the_server(api, local_server, fine_tuned, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "merged"
    assert main(["export", fine_tuned, "--format", "merged", "--out", str(out),
                 "--data-dir", str(local_server.data_dir)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "ftutils_export.json"} <= names
    assert not any(n.startswith("adapter_") for n in names)  # really merged: no peft needed
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert "<|im_start|>" in tokenizer.chat_template
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    answer = server_answer(api, fine_tuned)
    assert answer.startswith("Hello")  # the fine-tune's answer, not the random base's
    assert greedy(model, tokenizer) == answer
    assert json.loads((out / "ftutils_export.json").read_text())["base_model"] == "tiny-smollm2"


def test_adapter_folder_on_its_base_answers_as_the_server(api, local_server, fine_tuned, tmp_path):
    from peft import PeftModel
    from transformers import AutoTokenizer

    from ftutils.local.models.loading import tiny_model

    out = tmp_path / "adapter"
    assert main(["export", fine_tuned, "--format", "adapter", "--out", str(out),
                 "--data-dir", str(local_server.data_dir)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= names
    assert "model.safetensors" not in names
    model = PeftModel.from_pretrained(tiny_model(), out).eval()
    assert greedy(model, AutoTokenizer.from_pretrained(out)) == server_answer(api, fine_tuned)


def test_refusals_are_one_line_and_leave_nothing(local_server, fine_tuned, tmp_path, capsys):
    data = ["--data-dir", str(local_server.data_dir)]
    assert main(["export", "ft:tiny-smollm2:local:nope:12345678", "--out", str(tmp_path / "a"), *data]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", "tiny-smollm2", "--format", "adapter", "--out", str(tmp_path / "b"), *data]) == 2
    assert "base model" in capsys.readouterr().err
    (tmp_path / "c").mkdir()
    assert main(["export", fine_tuned, "--out", str(tmp_path / "c"), *data]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["export", fine_tuned, "--data-dir", str(tmp_path / "empty")]) == 2
    assert "no local backend state" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
