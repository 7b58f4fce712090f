"""Loading base models offline: the seeded tiny model and its tokenizer from the GGUF, read once."""
from __future__ import annotations

import torch

from ftutils.local.models import cache, loading


def test_tiny_model_is_the_same_from_its_seed_and_leaves_the_callers_rng_alone():
    torch.manual_seed(7)
    expected_next = torch.rand(3)
    torch.manual_seed(7)
    first = loading.tiny_model()
    after = torch.rand(3)
    second = loading.tiny_model()
    assert torch.equal(after, expected_next)
    state1, state2 = first.state_dict(), second.state_dict()
    assert state1.keys() == state2.keys()
    assert all(torch.equal(state1[k], state2[k]) for k in state1)
    config = first.config
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (49152, 64, 2)
    assert first.get_output_embeddings().weight is first.get_input_embeddings().weight  # tied, like SmolLM2
    assert first.get_input_embeddings().weight[2].abs().sum() > 0  # <|im_end|> is predictable


def test_tiny_model_loads_with_smollm2s_tokenizer_and_caches_it(ml_data_dir, monkeypatch):
    model, tokenizer = loading.load_base("tiny-smollm2", ml_data_dir)
    assert tokenizer.convert_ids_to_tokens([1, 2]) == ["<|im_start|>", "<|im_end|>"]
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert not (ml_data_dir / "models" / "smollm2-135m-instruct").exists()  # no 135M conversion for the tiny model
    assert not list((ml_data_dir / "models").glob(".tmp-*"))

    def no_gguf():
        raise AssertionError("the GGUF was read again")
    monkeypatch.setattr(cache, "gguf_path", no_gguf)
    again, tokenizer2 = loading.load_base("tiny-smollm2", ml_data_dir)
    assert tokenizer2("hello world")["input_ids"] == tokenizer("hello world")["input_ids"]
    assert torch.equal(again.get_input_embeddings().weight, model.get_input_embeddings().weight)
