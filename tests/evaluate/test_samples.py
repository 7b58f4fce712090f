"""sample_answers on the real local server: the last assistant turn is held back and shown
as what the data expects, beside the model's own (greedy, so repeatable) answer."""
import pandas as pd

from ftutils.evaluate.samples import sample_answers

EXAMPLES = [
    {"id": "t1", "messages": [{"role": "system", "content": "Label the ticket."},
                              {"role": "user", "content": "I was charged twice"},
                              {"role": "assistant", "content": "billing"}]},
    {"messages": [{"role": "user", "content": "Where is my parcel?"}]},  # nothing to hold back
    {"id": "t3", "messages": [{"role": "user", "content": "never asked: n=2"}, {"role": "assistant", "content": "x"}]},
]


def test_sample_answers_holds_back_the_expected_answer(client):
    df = sample_answers(client, "tiny-smollm2", EXAMPLES, n=2, max_tokens=4)
    assert list(df.columns) == ["id", "user", "expected", "answer"]
    assert df["id"].iloc[0] == "t1" and pd.isna(df["id"].iloc[1])
    assert df["user"].tolist() == ["I was charged twice", "Where is my parcel?"]
    assert df["expected"].iloc[0] == "billing" and pd.isna(df["expected"].iloc[1])
    assert all(isinstance(a, str) and a == a.strip() for a in df["answer"])
    again = sample_answers(client, "tiny-smollm2", EXAMPLES, n=2, max_tokens=4)
    assert again["answer"].tolist() == df["answer"].tolist()  # temperature 0
