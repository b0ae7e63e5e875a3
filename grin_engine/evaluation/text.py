"""Pure text functions: word splitting, key-token selection and fluency statistics.

Key tokens ("keywords") are what GRIN's keyword metrics look for in a generation. TOFU answers are
templated ("The author's name is Hina Ameen."), so most of their words echo the question and a model
that never saw the author still reproduces them; the fact is carried by a few words. The rule,
deterministic and applied in order:

1. words of the answer (letters/digits, inner ' - . / kept: "06/30/1975", "Jean-Paul", "O'Brien"),
   with a trailing possessive 's removed;
2. candidates: words containing a digit (numbers, dates, years) and capitalized words that are not
   function words (names, places, titles; sentence-initial "The", "His" ... are function words);
3. drop candidates whose lowercase form occurs among the question's words (the question gives them);
4. if nothing is left, fall back to the non-function words of 4+ characters absent from the
   question, then to every non-function word of the answer. Duplicates are kept once, in order.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

_APOSTROPHES = "'\u2019"
_WORD = re.compile(rf"[A-Za-z0-9\u00C0-\u024F]+(?:[{_APOSTROPHES}\-./][A-Za-z0-9\u00C0-\u024F]+)*")
_POSSESSIVE = re.compile(rf"[{_APOSTROPHES}]s$", re.IGNORECASE)

# Function words and sentence-initial fillers: capitalized at a sentence start but never a fact.
FUNCTION_WORDS = frozenset(
    [
        "a", "an", "the", "and", "or", "but", "nor", "so", "yet", "if", "then", "than", "that", "this",
        "these", "those", "there", "here", "it", "its", "it's", "he", "she", "they", "them", "their", "theirs",
        "his", "her", "hers", "him", "we", "us", "our", "you", "your", "i", "me", "my", "mine", "who", "whom",
        "whose", "which", "what", "when", "where", "why", "how", "is", "are", "was", "were", "be", "been",
        "being", "am", "do", "does", "did", "done", "have", "has", "had", "having", "will", "would", "shall",
        "should", "can", "could", "may", "might", "must", "not", "no", "yes", "of", "in", "on", "at", "by",
        "for", "with", "from", "to", "into", "onto", "upon", "about", "above", "below", "over", "under",
        "after", "before", "during", "through", "throughout", "between", "among", "against", "without",
        "within", "along", "across", "around", "as", "also", "however", "moreover", "furthermore", "although",
        "though", "while", "because", "since", "until", "unless", "indeed", "additionally", "overall",
        "notably", "born", "besides", "thus", "therefore", "hence", "some", "such", "many", "much", "most",
        "more", "each", "every", "all", "any", "both", "either", "neither", "one", "ones", "other", "another",
        "very", "well", "just", "only", "even", "still", "already", "often", "always", "never", "known",
    ]
)


def words(text: str) -> list[str]:
    """Words of `text` with a possessive 's stripped ("Ameen's" -> "Ameen")."""
    return [_POSSESSIVE.sub("", w) for w in _WORD.findall(text)]


def _is_fact_word(word: str) -> bool:
    if any(c.isdigit() for c in word):
        return True
    return word[0].isupper() and word.lower() not in FUNCTION_WORDS


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


def keywords(question: str, answer: str) -> list[str]:
    """The key tokens of `answer` given `question` (rule in the module docstring)."""
    asked = {w.lower() for w in words(question)}
    answer_words = words(answer)
    facts = [w for w in answer_words if _is_fact_word(w) and w.lower() not in asked]
    if not facts:
        facts = [w for w in answer_words if len(w) >= 4 and w.lower() not in FUNCTION_WORDS | asked]
    if not facts:
        facts = [w for w in answer_words if w.lower() not in FUNCTION_WORDS]
    return _unique(facts)


def keyword_spans(text: str, keys: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans of whole-word, case-insensitive occurrences of `keys` in `text`."""
    spans = []
    for key in keys:
        pattern = re.compile(rf"(?<![\w]){re.escape(key)}(?![\w])", re.IGNORECASE)
        spans += [m.span() for m in pattern.finditer(text)]
    return sorted(spans)


def keyword_hit_rate(keys: Sequence[str], generation: str) -> float:
    """Fraction of `keys` present as whole words (case-insensitive) in `generation`; NaN if no keys."""
    if not keys:
        return math.nan
    present = {w.lower() for w in words(generation)}
    return sum(k.lower() in present for k in keys) / len(keys)


def repetition_rate(tokens: Sequence[str], n: int = 2) -> float:
    """Share of n-grams that repeat an earlier n-gram: 1 - distinct/total (0 when too short)."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def token_entropy(tokens: Sequence[str]) -> float:
    """Shannon entropy (bits) of the word distribution of one generation; 0 for empty text.
    Very low values flag loops ("the the the"), unusually high ones word salad."""
    counts = Counter(tokens)
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0.0


def fluency_tokens(text: str) -> list[str]:
    """Lowercase whitespace-separated tokens: unlike `words`, punctuation runs such as ":::::" stay
    visible, so punctuation gibberish counts as repetitive and as non-words."""
    return text.lower().split()


def is_word(token: str, lexicon: set[str]) -> bool:
    """A token is a word when, stripped of edge punctuation and a possessive, it is a number or in
    `lexicon`; a token that is only punctuation is not."""
    core = _POSSESSIVE.sub("", token.strip(string.punctuation + "\u2018\u2019\u201c\u201d"))
    if not core:
        return False
    return any(c.isdigit() for c in core) or core in lexicon


def nonword_share(tokens: Sequence[str], lexicon: set[str]) -> float:
    """Share of tokens that are not words (see `is_word`); 0 for an empty generation."""
    return sum(not is_word(t, lexicon) for t in tokens) / len(tokens) if tokens else 0.0
