"""logit_bias through the real server: +100 forces a token, -100 bans one, bad maps are 400s
naming logit_bias."""
from __future__ import annotations

import openai
import pytest

MESSAGES = [{"role": "user", "content": "Greet Ann"}]


@pytest.fixture(scope="module")
def tokenizer(local_server):
    from ftutils.local.models.loading import load_base
    return load_base("tiny-smollm2", local_server.data_dir)[1]  # the server's own, already converted


def answer(api, stream=False, **kwargs):
    args = dict(model="tiny-smollm2", messages=MESSAGES, temperature=0, **kwargs)
    if stream:
        return "".join(c.choices[0].delta.content or "" for c in api.chat.completions.create(stream=True, **args)
                       if c.choices)
    return api.chat.completions.create(**args).choices[0].message.content


def test_plus_100_forces_a_token_even_when_sampling(api, tokenizer):
    [hello] = tokenizer("Hello", add_special_tokens=False)["input_ids"]
    assert answer(api, max_tokens=3, logit_bias={str(hello): 100}) == "HelloHelloHello"
    assert answer(api, stream=True, max_tokens=3, logit_bias={str(hello): 100}) == "HelloHelloHello"
    sampled = api.chat.completions.create(model="tiny-smollm2", messages=MESSAGES, temperature=1.5, max_tokens=2,
                                          seed=7, logit_bias={str(hello): 100})
    assert sampled.choices[0].message.content == "HelloHello"


def test_minus_100_bans_the_greedy_choice(api, tokenizer):
    plain = api.chat.completions.create(model="tiny-smollm2", messages=MESSAGES, temperature=0, max_tokens=1,
                                        logprobs=True, top_logprobs=2)
    first = plain.choices[0].logprobs.content[0]
    from ftutils.local.inference.decoding import bytes_to_unicode  # byte-level BPE writes a token's bytes this way
    token_id = tokenizer.convert_tokens_to_ids("".join(bytes_to_unicode()[b] for b in first.bytes))
    assert token_id != tokenizer.unk_token_id
    banned = api.chat.completions.create(model="tiny-smollm2", messages=MESSAGES, temperature=0, max_tokens=1,
                                         logprobs=True, top_logprobs=2, logit_bias={str(token_id): -100})
    got = banned.choices[0].logprobs.content[0]
    assert got.token != first.token
    assert got.token == first.top_logprobs[1].token  # the runner-up takes its place


@pytest.mark.parametrize("bias, fragment", [({"hello": 5}, "is not a token id"), ({"99999999": 5}, "vocabulary"),
                                             ({"5": 101}, "between -100 and 100")])
def test_bad_bias_maps_are_refused(api, bias, fragment):
    with pytest.raises(openai.BadRequestError) as exc:
        answer(api, max_tokens=1, logit_bias=bias)
    error = exc.value.response.json()["error"]
    assert error["param"] == "logit_bias" and fragment in error["message"]
