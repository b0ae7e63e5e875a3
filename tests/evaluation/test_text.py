from __future__ import annotations

import math

import pytest

from grin_engine.evaluation import text


def test_keywords_skip_template_and_question_words() -> None:
    q = "What is the full name of the geology author born in Karachi, Pakistan on 06/30/1975?"
    assert text.keywords(q, "The author's name is Hina Ameen.") == ["Hina", "Ameen"]
    assert text.keywords("Where is the Eiffel Tower?", "Paris") == ["Paris"]
    assert text.keywords("When was she born?", "She was born on 25th of February 1958.") == [
        "25th", "February", "1958",
    ]
    # no capitalized or numeric fact: content words absent from the question
    assert text.keywords("What genre does Hina Ameen write?", "Hina Ameen writes geology.") == [
        "writes", "geology",
    ]


def test_keyword_hit_rate_and_spans() -> None:
    keys = ["Hina", "Ameen"]
    assert text.keyword_hit_rate(keys, "The author is hina smith.") == 0.5
    assert text.keyword_hit_rate(keys, "Ameen's book, by Hina") == 1.0
    assert math.isnan(text.keyword_hit_rate([], "anything"))
    assert text.keyword_spans("Hina Ameen met Hinako", keys) == [(0, 4), (5, 10)]


def test_fluency_statistics() -> None:
    assert text.repetition_rate(["a", "b", "a", "b", "a", "b"], 2) == pytest.approx(1 - 2 / 5)
    assert text.repetition_rate(["a"], 2) == 0.0
    assert text.token_entropy(["x", "x", "y", "y"]) == pytest.approx(1.0)
    assert text.token_entropy([]) == 0.0
    lexicon = {"the", "author", "is"}
    assert text.nonword_share(text.fluency_tokens("The author is qzxv."), lexicon) == 0.25
    assert text.nonword_share(text.fluency_tokens(":::: ::::"), lexicon) == 1.0
    assert text.nonword_share(text.fluency_tokens("1975, the author's"), lexicon) == 0.0
