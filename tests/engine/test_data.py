import json

import pytest

from grin_engine.build import train_tokenizer
from grin_engine.data import IGNORE_INDEX, QARecord, TextRecord, encode, format_prompt, load_records
from grin_engine.errors import DataError


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(["Question: who wrote it?\nAnswer: Basil Mahfouz wrote it."] * 5, vocab_size=300)


def test_malformed_line_reports_file_and_line(tmp_path):
    p = tmp_path / "f.json"
    p.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n\n{not json\n")
    with pytest.raises(DataError, match=r"f\.json:3: invalid JSON"):
        load_records(p, "qa")
    p.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(DataError, match=r"f\.json:1: answer"):
        load_records(p, "qa")


def test_pku_rows_give_unsafe_responses_only(tmp_path):
    p = tmp_path / "pku.jsonl"
    row = {
        "prompt": "p",
        "response_0": "bad",
        "response_1": "good",
        "is_response_0_safe": False,
        "is_response_1_safe": True,
    }
    p.write_text(json.dumps(row) + "\n")
    [rec] = load_records(p, "pku")
    assert (rec.prompt, rec.response) == ("p", "bad")


def test_encode_labels_only_answer_tokens_and_reports_truncation(tok):
    recs = [QARecord(question="who wrote it?", answer="Basil Mahfouz wrote it.")]
    enc = encode(tok, recs, max_length=64)
    labels, ids = enc.labels[0], enc.input_ids[0]
    answer = labels[labels != IGNORE_INDEX]
    assert tok.decode(answer).startswith(" Basil Mahfouz wrote it.")
    assert answer[-1] == tok.eos_token_id and enc.n_truncated == 0
    # prompt tokens precede the first labelled position and carry no loss
    first = int((labels != IGNORE_INDEX).nonzero()[0])
    assert tok.decode(ids[1:first]) == "Question: who wrote it?\nAnswer:"
    short = encode(tok, recs, max_length=12)
    assert short.n_truncated == 1 and short.input_ids.shape[1] == 12


def test_text_records_label_every_token(tok):
    enc = encode(tok, [TextRecord(text="Basil wrote it.")], max_length=32)
    assert (enc.labels[0, 1:] != IGNORE_INDEX).all()  # everything after BOS


def test_prompt_template_must_end_with_answer(tok):
    with pytest.raises(DataError):
        format_prompt(tok, "q", "{answer} then {question}")
    assert format_prompt(tok, "q", "Q: {question} A: {answer}") == ("Q: q A:", " ")
