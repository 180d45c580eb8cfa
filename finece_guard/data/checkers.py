"""Decide whether a free-form generated answer is correct, and what it finally commits to.

FineCE learns to predict the probability that an answer is correct, so its training labels
and every calibration metric are only as good as these checks. The generator answers in prose
("The answer is C) photosynthesis, because ..."), so the checkers read the *committed* answer
rather than scanning everything written: an explanation that mentions the gold alias while
the answer itself is wrong must not count as correct (that inflates accuracy).

* CHOICE   :func:`extract_choice` finds the option letter or text the answer commits to.
* ALIAS    a gold alias occurs (normalised, whole tokens) in the *answer span*.
* SHORT    like ALIAS with one gold answer, plus numeric equality ("3.0" == "3").
* NUMERIC  the final number ("#### N", "The answer is N", else the last number) equals the gold.
* YESNO    the "yes" or "no" the answer span commits to (:func:`extract_yes_no`) equals the gold.

:func:`extract_final` returns the committed answer in normalised form; two answers agree
(self-consistency voting) iff their finals are equal.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Final

from finece_guard.data.records import LETTERS, YES_NO, AnswerKind, QARecord

NUMERIC_TOLERANCE: Final = 1e-6

# --------------------------------------------------------------------------- normalisation

_APOSTROPHES = re.compile(r"[’'`´‘]")
_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d)")
_DECIMAL_POINT = "\x00"
_MINUS = "\x01"
_NEGATIVE_NUMBER = re.compile(r"(?<![\w.])[-−](?=\d)")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _punctuation_to_space(text: str) -> str:
    return "".join(" " if unicodedata.category(char)[0] in "PS" else char for char in text)


def normalize_text(text: str) -> str:
    """SQuAD-style normalisation: lowercase, no punctuation, no articles (a/an/the), single spaces.

    Slightly more careful than SQuAD about tokens: accents are dropped ("Beyoncé" -> "beyonce"),
    apostrophes vanish ("o'brien" -> "obrien"), other punctuation becomes a space ("Campbell-Bannerman"
    -> "campbell bannerman"), digit-group commas vanish ("1,234" -> "1234") and a decimal point
    between digits is kept ("3.5" stays one token, so it never matches "3"), and so is the sign of a
    negative number ("-1" / "−1" -> "-1", never "1").
    """
    text = _strip_accents(text.lower())
    text = _APOSTROPHES.sub("", text)
    text = _DIGIT_COMMA.sub("", text)
    text = re.sub(r"(?<=\d)\.(?=\d)", _DECIMAL_POINT, text)
    text = _NEGATIVE_NUMBER.sub(_MINUS, text)
    text = _punctuation_to_space(text).replace(_DECIMAL_POINT, ".").replace(_MINUS, "-")
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _tokens(text: str) -> list[str]:
    return normalize_text(text).split()


def _find_tokens(needle: Sequence[str], haystack: Sequence[str]) -> list[int]:
    """Start positions where ``needle`` occurs as a contiguous token sequence of ``haystack``."""
    size = len(needle)
    if size == 0:
        return []
    return [i for i in range(len(haystack) - size + 1) if list(haystack[i : i + size]) == list(needle)]


# --------------------------------------------------------------------------- answer span

# "answer is", "answer:", "answer would be", optionally "final/correct answer is:" etc.
_ANSWER_MARKER = re.compile(r"\banswer\s*(?:is\b|would\s+be\b|:)\s*:?", re.IGNORECASE)
_ABBREVIATIONS: Final = frozenset({
    "st", "dr", "mr", "mrs", "ms", "jr", "sr", "mt", "ft", "gen", "col", "capt", "lt", "sgt", "rev", "prof",
    "vs", "etc", "no", "inc", "ltd", "co", "approx", "fig", "ca",
})  # fmt: skip
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def _is_abbreviation(text: str, end: int) -> bool:
    """True when the period at ``end`` closes an abbreviation or an initial ("St.", "J.", "U.S.")."""
    match = re.search(r"([A-Za-z.]+)$", text[:end])
    word = match.group(1) if match else ""
    bare = word.strip(".").lower()
    return text[end] == "." and (len(bare) == 1 or "." in bare or bare in _ABBREVIATIONS)


def first_line(text: str) -> str:
    """First non-empty line of ``text``, stripped."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def first_sentence(text: str) -> str:
    """First non-empty line of ``text``, cut at the first sentence end that is not an abbreviation."""
    line = first_line(text)
    for match in _SENTENCE_END.finditer(line):
        if not _is_abbreviation(line, match.start()):
            return line[: match.start()]
    return line


def _after_markers(text: str, marker: re.Pattern[str]) -> list[str]:
    """The text after each marker occurrence, last occurrence first."""
    return [text[match.end() :] for match in reversed(list(marker.finditer(text)))]


def _committed_line(answer: str) -> str:
    """The line that states the answer: after the last "answer is" marker that is followed by text, else the first."""
    for rest in _after_markers(answer, _ANSWER_MARKER):
        line = first_line(rest)
        if normalize_text(first_sentence(line)):
            return line
    return first_line(answer)


def answer_span(answer: str) -> str:
    """The part of an open answer that states the answer (not the explanation).

    The first sentence after the last "answer is" / "answer:" marker when there is one, else the
    first sentence (or line) of the answer.
    """
    return first_sentence(_committed_line(answer))


# --------------------------------------------------------------------------- ALIAS / SHORT


def _alias_in_span(answer: str, golds: Sequence[str]) -> bool:
    """A gold occurs as whole tokens *starting* inside the answer span.

    The match may run past the span's end within the same line, so golds with inner sentence
    punctuation ("Panic! at the Disco", "Portugal. The Man") still match; a gold that only
    starts in a later sentence (the explanation) does not.
    """
    line_tokens = _tokens(_committed_line(answer))
    span_size = len(_tokens(answer_span(answer)))
    return any(start < span_size for gold in golds for start in _find_tokens(_tokens(gold), line_tokens))


def _as_number(text: str) -> float | None:
    cleaned = text.strip().replace(",", "").lstrip("$").rstrip(".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _numbers_equal(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=0.0, abs_tol=NUMERIC_TOLERANCE)


def _numeric_match(span_tokens: Sequence[str], gold: str) -> bool:
    gold_value = _as_number(normalize_text(gold))
    if gold_value is None:
        return False
    values = (_as_number(token) for token in span_tokens)
    return any(value is not None and _numbers_equal(value, gold_value) for value in values)


def alias_correct(answer: str, aliases: Sequence[str]) -> bool:
    """True when a normalised gold alias occurs as whole tokens in the answer span."""
    return _alias_in_span(answer, aliases)


def short_correct(answer: str, gold: str) -> bool:
    """Like :func:`alias_correct` for one gold answer, also accepting the same number written differently."""
    return _alias_in_span(answer, [gold]) or _numeric_match(_tokens(answer_span(answer)), gold)


# --------------------------------------------------------------------------- NUMERIC

_NUMBER = re.compile(r"(?:(?<!\w)-)?\$?\d[\d,]*(?:\.\d+)?")
_HASHES = re.compile(r"####")


def _parse_number(raw: str) -> float | None:
    return _as_number(raw.replace("$", "").replace(" ", ""))


def _first_number(text: str) -> float | None:
    line = next((line for line in text.splitlines() if line.strip()), "")
    match = _NUMBER.search(line)
    return _parse_number(match.group(0)) if match else None


def extract_number(answer: str) -> float | None:
    """The final number of a worked answer.

    The number after the last "####" or "answer is" / "answer:" marker (on the first non-empty
    line after it), else the last number in the text. Commas, "$" and a trailing "." are ignored.
    """
    for marker in (_HASHES, _ANSWER_MARKER):
        for rest in _after_markers(answer, marker):
            value = _first_number(rest)
            if value is not None:
                return value
    numbers = _NUMBER.findall(answer)
    return _parse_number(numbers[-1]) if numbers else None


def format_number(value: float) -> str:
    """Canonical text of a number: "18", "-3", "2.5" (at most 6 decimals, no trailing zeros)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def numeric_correct(answer: str, gold: str) -> bool:
    """True when the answer's final number equals the gold number within ``NUMERIC_TOLERANCE``."""
    value, gold_value = extract_number(answer), _parse_number(gold)
    return value is not None and gold_value is not None and _numbers_equal(value, gold_value)


# --------------------------------------------------------------------------- CHOICE

# Letters that are also ordinary words ("A plant", "I think"): accepted bare only when clearly a label.
_AMBIGUOUS_LETTERS: Final = frozenset("AI")
_LABEL_PUNCTUATION: Final = frozenset(".):,]")
_CONNECTORS = re.compile(r"\s+(?:because|since|as|is|which|[-–—])(?=\s|$)", re.IGNORECASE)
#: "answer is", "answer to this question is indeed", "option would be:", "I choose"
_CHOICE_MARKER = re.compile(
    r"\b(?:answer|option|choice)(?:\s+(?:to|for)\s+(?:the|this)\s+question)?\s*(?:is\b|would\s+be\b|:)\s*:?\s*"
    r"(?:(?:indeed|clearly|likely|probably|definitely)\s+)?|\bi\s+(?:choose|pick|select)\s+",
    re.IGNORECASE,
)
#: Quotes a small model puts around a label ('The answer is "D"', "answer is 'B'")
_QUOTES: Final = "\"'“”‘’"
_LEADING_LABEL = re.compile(
    r"[\s*_#>\"'“‘]*(?:(?i:option|choice|letter)\s+)?([(\[]?)([A-Za-z])(?![A-Za-z0-9-]|['’][A-Za-z])"
)
_EXPLICIT_LABEL = re.compile(r"\(([A-Za-z])\)|\b(?i:option|choice|letter)\s+\(?([A-Z])\b")


def _starts_with_option(rest: str, option: str) -> bool:
    option_tokens = _tokens(option)
    return bool(option_tokens) and _tokens(rest)[: len(option_tokens)] == option_tokens


def _label_accepted(letter: str, bracketed: bool, rest: str, option: str) -> bool:
    """Whether a leading ``letter`` (followed by ``rest``) is an option label rather than a word."""
    if bracketed or not rest or rest[0] in _LABEL_PUNCTUATION or rest[0] == "\n":
        return True
    if letter.islower():
        return False
    if letter not in _AMBIGUOUS_LETTERS:
        return rest[0].isspace()
    return bool(_CONNECTORS.match(rest)) or _starts_with_option(rest, option)


def _leading_letter(text: str, choices: Sequence[str]) -> int | None:
    """Index of an option label at the very start of ``text`` ("C.", "C)", "(C)", "C:", "C", "option C")."""
    match = _LEADING_LABEL.match(text)
    if match is None:
        return None
    bracket, letter = match.group(1), match.group(2)
    index = LETTERS.find(letter.upper())
    if not 0 <= index < len(choices):
        return None
    rest = text[match.end() :].lstrip("*_" + _QUOTES)
    if bracket and not rest.startswith(")" if bracket == "(" else "]"):
        return None
    return index if _label_accepted(letter, bool(bracket), rest, choices[index]) else None


def _option_positions(text: str, choices: Sequence[str]) -> dict[int, int]:
    """Option index -> first token position of its (whole-word, normalised) text in ``text``.

    An option whose every occurrence lies inside an occurrence of a longer matched option is
    dropped ("water" inside "salt water").
    """
    haystack = _tokens(text)
    spans = {i: [(s, s + len(_tokens(c))) for s in _find_tokens(_tokens(c), haystack)] for i, c in enumerate(choices)}
    spans = {i: found for i, found in spans.items() if found}

    def covered(i: int, start: int, end: int) -> bool:
        return any(j != i and s <= start and end <= e and e - s > end - start for j in spans for s, e in spans[j])

    return {i: found[0][0] for i, found in spans.items() if not all(covered(i, s, e) for s, e in found)}


def _unique_option(text: str, choices: Sequence[str]) -> int | None:
    positions = _option_positions(text, choices)
    return next(iter(positions)) if len(positions) == 1 else None


def _squash(text: str) -> str:
    return " ".join(text.replace("−", "-").split())


def _raw_prefix_option(text: str, choices: Sequence[str], *, ignore_case: bool) -> int | None:
    """The longest option whose raw text (spacing aside) the first line of ``text`` starts with.

    Normalisation drops the symbols that tell "(x + 1)" from "(x − 1)" or "-1" from "1", and
    case tells "Bb Bb" from "BB BB"; this literal comparison decides those first. In the
    case-sensitive pass (tried before the letter rules) one-character options are skipped, so a
    leading "B" stays a label.
    """

    def fold(value: str) -> str:
        return _squash(value).casefold() if ignore_case else _squash(value)

    head = fold(first_line(text))
    found = [
        i
        for i, option in enumerate(choices)
        if len(raw := fold(option)) > (0 if ignore_case else 1)
        and head.startswith(raw)
        and not head[len(raw) : len(raw) + 1].isalnum()
    ]
    return max(found, key=lambda i: len(_squash(choices[i]))) if found else None


def _literal_option(text: str, choices: Sequence[str]) -> int | None:
    return _raw_prefix_option(text, choices, ignore_case=False)


def _start_option(text: str, choices: Sequence[str]) -> int | None:
    """The option ``text`` starts with (literally, then normalised; the longest one), else None."""
    index = _raw_prefix_option(text, choices, ignore_case=True)
    if index is not None:
        return index
    starting = [i for i, position in _option_positions(first_sentence(text), choices).items() if position == 0]
    return max(starting, key=lambda i: len(_tokens(choices[i]))) if starting else None


def _leading_option(text: str, choices: Sequence[str]) -> int | None:
    """The option ``text`` starts with, else the single option its first sentence mentions."""
    index = _start_option(text, choices)
    return index if index is not None else _unique_option(first_sentence(text), choices)


def _after_marker_choice(answer: str, choices: Sequence[str]) -> int | None:
    for rest in _after_markers(answer, _CHOICE_MARKER):
        index = _literal_option(rest, choices)
        if index is None:
            index = _leading_letter(rest, choices)
        if index is None:
            index = _leading_option(rest, choices)
        if index is not None:
            return index
    return None


def _explicit_label(answer: str, choices: Sequence[str]) -> int | None:
    """A single option named anywhere as "(C)" or "option C"; None when several are named."""
    letters = {(match.group(1) or match.group(2)).upper() for match in _EXPLICIT_LABEL.finditer(answer)}
    indices = {LETTERS.index(letter) for letter in letters if LETTERS.index(letter) < len(choices)}
    return indices.pop() if len(indices) == 1 else None


_LABELLED_LINE = re.compile(r"(?m)^\s*\(?([A-Z])[.)]\s")


def _recites_options(answer: str) -> bool:
    """True if two or more different option labels start lines of the answer."""
    return len(set(_LABELLED_LINE.findall(answer))) >= 2


def extract_choice(answer: str, choices: Sequence[str]) -> int | None:
    """Index of the option ``answer`` commits to, or None when that cannot be decided.

    Tried in order, the first decision wins:

    1. after the last "answer is" / "Answer:" / "option is" marker: a label or an option text;
    2. an option's literal text (case-sensitive) the answer starts with ("B is tangential ..."
       when that is an option's text, "-1" rather than "1");
    3. a label at the very start ("C.", "C)", "(C)", "C:", "**C**", a lone "C");
    4. an option text the answer starts with (case and punctuation aside);
    5. a single option named anywhere as "(C)" or "option C";
    6. a single option text in the first sentence, then in the whole answer.

    A bare leading "A" is read as a label only when followed by ".", ")", ":", ",", the end of
    the text, a connector ("A because ...") or option A's own text, never in "A plant needs ...".

    An answer that recites two or more options as labelled lines ("A. ...\nB. ...") commits to
    nothing unless it names one after a marker (step 1): small models often just repeat the
    option list, and reading its first line as a choice would count option A as an answer.
    """
    if not choices:
        return None
    if _recites_options(answer):
        return _after_marker_choice(answer, choices)
    steps: tuple[Callable[[str, Sequence[str]], int | None], ...] = (
        _after_marker_choice,
        _literal_option,
        lambda text, options: _leading_letter(text.strip(), options),
        _start_option,
        _explicit_label,
        lambda text, options: _unique_option(first_sentence(text), options),
        _unique_option,
    )
    for step in steps:
        index = step(answer, choices)
        if index is not None:
            return index
    return None


# --------------------------------------------------------------------------- YESNO

#: Words that state a yes/no answer, by the answer they state.
_YES_NO_WORDS: Final = {"yes": YES_NO[0], "true": YES_NO[0], "no": YES_NO[1], "false": YES_NO[1]}


def extract_yes_no(answer: str) -> str | None:
    """``"yes"`` or ``"no"``: what the answer span (:func:`answer_span`) commits to; None when unclear.

    The span's first word when it is yes/no/true/false; else the one such word the span uses
    ("Based on the passage, yes."); None when it uses none, or both kinds without leading with
    one ("No" in "there is no limit, yes" is not the committed answer).
    """
    tokens = _tokens(answer_span(answer))
    said = [_YES_NO_WORDS[t] for t in tokens if t in _YES_NO_WORDS]
    if not said:
        return None
    if tokens[0] in _YES_NO_WORDS or len(set(said)) == 1:
        return said[0]
    return None


# --------------------------------------------------------------------------- dispatch


def _committed_option(record: QARecord, answer: str) -> int | None:
    """Extracted option index; among options with identical text (a few CSQA items list one twice), the first."""
    index = extract_choice(answer, record.choices)
    if index is None:
        return None
    text = _squash(record.choices[index])
    return next(i for i, option in enumerate(record.choices) if _squash(option) == text)


def is_correct(record: QARecord, answer: str) -> bool:
    """Whether the generated ``answer`` to ``record`` is correct, by the record's answer kind."""
    if record.kind is AnswerKind.CHOICE:
        gold = _squash(record.answers[1])
        index = _committed_option(record, answer)
        return index is not None and _squash(record.choices[index]) == gold
    if record.kind is AnswerKind.ALIAS:
        return alias_correct(answer, record.answers)
    if record.kind is AnswerKind.SHORT:
        return short_correct(answer, record.answers[0])
    if record.kind is AnswerKind.YESNO:
        return extract_yes_no(answer) == record.answers[0]
    return numeric_correct(answer, record.answers[0])


def extract_final(record: QARecord, answer: str) -> str | None:
    """The answer's committed final answer, normalised; None when it commits to nothing.

    Option letter for CHOICE, canonical number for NUMERIC, "yes"/"no" for YESNO. For ALIAS and SHORT a correct answer
    maps to the normalised first gold answer (so every correct answer agrees with every other),
    any other answer to its normalised answer span.
    """
    if record.kind is AnswerKind.CHOICE:
        index = _committed_option(record, answer)
        return None if index is None else LETTERS[index]
    if record.kind is AnswerKind.NUMERIC:
        value = extract_number(answer)
        return None if value is None else format_number(value)
    if record.kind is AnswerKind.YESNO:
        return extract_yes_no(answer)
    if is_correct(record, answer):
        return normalize_text(record.answers[0])
    return normalize_text(answer_span(answer)) or None
