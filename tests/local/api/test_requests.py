"""Requests shaped for the services, without a server: a chat request into one SamplingParams
and the chat template's messages, a job request into its method's hyperparameters. (The same
requests through a real server and the openai client are in tests/local/e2e/.)"""
from __future__ import annotations

import pytest

from ftutils.local.api import completions, job_requests, schemas
from ftutils.local.api.errors import APIError
from ftutils.local.inference.sampling import InferenceError, SamplingParams

HELLO = [{"role": "user", "content": "hi"}]


def chat(**fields) -> schemas.ChatCompletionRequest:
    return schemas.ChatCompletionRequest(model="any", messages=HELLO, **fields)


def test_a_bare_request_samples_with_openais_defaults():
    assert completions.sampling_params(chat()) == SamplingParams()
    assert SamplingParams().temperature == 1.0 and SamplingParams().top_p == 1.0 and SamplingParams().n == 1


def test_every_sampling_option_reaches_the_one_params_object():
    params = completions.sampling_params(chat(max_tokens=9, temperature=0, top_p=0.5, seed=-3, stop="\n", n=2,
                                              logprobs=True, top_logprobs=3, logit_bias={"5": -100},
                                              response_format={"type": "json_object"}))
    assert params == SamplingParams(max_tokens=9, temperature=0, top_p=0.5, seed=-3, stop=("\n",), n=2, logprobs=True,
                                    top_logprobs=3, logit_bias={"5": -100}, response_format={"type": "json_object"})
    assert completions.sampling_params(chat(max_tokens=9, max_completion_tokens=4)).max_tokens == 4  # the newer name wins


def test_what_openai_refuses_is_refused_when_the_params_are_made():
    with pytest.raises(InferenceError) as info:
        completions.sampling_params(chat(top_logprobs=2))
    assert info.value.param == "top_logprobs" and info.value.code == "invalid_value"
    with pytest.raises(InferenceError, match="at most 4") as info:
        completions.sampling_params(chat(stop=["a", "b", "c", "d", "e"]))
    assert info.value.param == "stop"


def test_messages_become_plain_text_with_system_for_developer():
    raw = [{"role": "developer", "content": "be brief"},
           {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
           {"role": "assistant", "content": None}]
    assert completions.messages(raw) == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "ab"},
                                         {"role": "assistant", "content": ""}]
    with pytest.raises(APIError) as info:
        completions.messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])
    assert (info.value.status, info.value.param) == (400, "messages[0].content[0]")


def job(**fields) -> schemas.CreateFineTuningJobRequest:
    return schemas.CreateFineTuningJobRequest(model="any", training_file="file-x", **fields)


def test_hyperparameters_are_the_methods_with_auto_for_the_rest():
    assert job_requests.hyperparameters(job()) == (
        {"batch_size": "auto", "learning_rate_multiplier": "auto", "n_epochs": "auto"}, "supervised")
    assert job_requests.hyperparameters(job(hyperparameters={"n_epochs": 2})) == (
        {"batch_size": "auto", "learning_rate_multiplier": "auto", "n_epochs": 2}, "supervised")
    dpo = job(method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.3}}})
    assert job_requests.hyperparameters(dpo) == (
        {"beta": 0.3, "batch_size": "auto", "learning_rate_multiplier": "auto", "n_epochs": "auto"}, "dpo")


@pytest.mark.parametrize("fields, param, code", [
    ({"method": {"type": "dpo"}, "hyperparameters": {"n_epochs": 2}}, "hyperparameters", "invalid_value"),
    ({"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
      "hyperparameters": {"n_epochs": 3}}, "hyperparameters", "conflicting_parameters"),
    ({"hyperparameters": {"beta": 0.3}}, "hyperparameters.beta", "unknown_parameter"),
    ({"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 3}}}}, "method.dpo.hyperparameters.beta",
     "invalid_value"),
    ({"method": {"type": "reinforcement"}}, "method.type", "unsupported_method"),
])
def test_a_bad_job_request_is_refused_naming_its_parameter(fields, param, code):
    with pytest.raises(APIError) as info:
        job_requests.hyperparameters(job(**fields))
    assert (info.value.status, info.value.param, info.value.code) == (400, param, code)
