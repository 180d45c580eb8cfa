"""Answer checkers on real dataset items and on the tricky phrasings a small model produces."""

from __future__ import annotations

import pytest

from finece_guard.data import (
    AnswerKind,
    QARecord,
    answer_span,
    extract_choice,
    extract_final,
    extract_number,
    extract_yes_no,
    is_correct,
    load_task,
    normalize_text,
)


def record(task: str, record_id: str) -> QARecord:
    return next(r for r in load_task(task) if r.id == record_id)


@pytest.fixture(scope="module")
def beatles() -> QARecord:  # "Real Love in 1996 was whose last top 10 hit in the UK?"
    return record("triviaqa", "triviaqa/dpql_2572")


@pytest.fixture(scope="module")
def arc_drought() -> QARecord:  # fog / rain / drought / tornado, gold C
    return record("arc_challenge", "arc_challenge/Mercury_7103565")


@pytest.fixture(scope="module")
def arc_phone() -> QARecord:  # cellular telephone / television / refrigerator / airplane, gold A
    return record("arc_easy", "arc_easy/MCAS_2000_4_6")


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The Beatles!", "beatles"),
        ("  A Tale of  Two Cities. ", "tale of two cities"),
        ("Campbell-Bannerman", "campbell bannerman"),
        ("He ain't heavy", "he aint heavy"),
        ("1,234 people", "1234 people"),
        ("$18.", "18"),
        ("3.5 m", "3.5 m"),
        ("−1 or -1", "-1 or -1"),
        ("Beyoncé", "beyonce"),
        ("An apple", "apple"),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@pytest.mark.parametrize(
    ("answer", "span"),
    [
        ("Sunset Boulevard. It premiered in 1993.", "Sunset Boulevard"),
        ("Let me think. The answer is Paris. Lyon is smaller.", "Paris"),
        ("St. Louis is the city. Chicago is not.", "St. Louis is the city"),
        ("The answer is:\n\nSunset Blvd.\nIt opened in 1993.", "Sunset Blvd"),
        ("Answer: 18\nExplanation: 9 * 2", "18"),
        ("", ""),
    ],
)
def test_answer_span(answer: str, span: str) -> None:
    assert answer_span(answer) == span


# --------------------------------------------------------------------------- ALIAS


def test_alias_ignores_articles(beatles: QARecord) -> None:
    assert beatles.answers[0] == "The Beatles"
    assert is_correct(beatles, "Beatles. Real Love was a reworked John Lennon demo.")
    assert is_correct(beatles, "It was the Beatles, in 1996.")
    assert is_correct(beatles, "The answer is THE BEATLES!")
    assert not is_correct(beatles, "Oasis. Real Love was a hit for them.")


def test_alias_in_explanation_only_is_not_correct(beatles: QARecord) -> None:
    assert not is_correct(beatles, "Oasis. Some say it was the Beatles, but Oasis charted higher.")
    assert not is_correct(beatles, "I think the Beatles wrote it. However, the answer is Oasis.")
    assert is_correct(beatles, "Oasis? No. The answer is: The Beatles. Oasis came later.")


def test_alias_other_spellings_and_punctuation() -> None:
    sunset = record("triviaqa", "triviaqa/tc_33")
    assert is_correct(sunset, "Sunset Blvd.")
    assert is_correct(sunset, "sunset boulevard, which opened on Broadway")
    assert not is_correct(sunset, "Cats. Sunset Boulevard premiered later.")
    impalas = record("nq_open", "nq_open/9dafc450882dd113")
    assert is_correct(impalas, "Impalas")
    moon = record("nq_open", "nq_open/fab2582875f2e7ed")
    assert is_correct(moon, "The last time was in December 1972, during Apollo 17.")
    assert not is_correct(moon, "1969. Apollo 17 flew in December 1972.")


def test_alias_with_inner_sentence_punctuation() -> None:
    panic = record("nq_open", "nq_open/f0fb8563218e71b9")
    assert panic.answers == ("Panic! at the Disco",)
    assert is_correct(panic, "Panic! at the Disco. They formed in Las Vegas.")
    assert not is_correct(panic, "Fall Out Boy. Panic! at the Disco was a different band.")


def test_alias_final_maps_correct_answers_together(beatles: QARecord) -> None:
    assert extract_final(beatles, "Beatles. Lennon wrote it.") == "beatles"
    assert extract_final(beatles, "The answer is The Beatles.") == "beatles"
    assert extract_final(beatles, "Oasis. They were big in 1996.") == "oasis"
    assert extract_final(beatles, "") is None


# --------------------------------------------------------------------------- SHORT


def test_short_answer_sciq() -> None:
    mito = record("sciq", "sciq/a7828a9138717263")
    assert mito.answers == ("mitochondria",)
    assert is_correct(mito, "mitochondria.")
    assert is_correct(mito, "Mitochondria convert food into usable energy (ATP).")
    assert not is_correct(mito, "Ribosomes. Unlike mitochondria, they make proteins.")
    assert extract_final(mito, "Mitochondria!") == "mitochondria"


def test_short_answer_numbers() -> None:
    hoover = record("sciq", "sciq/55cba5d801fa038f")
    assert hoover.answers == ("1935",)
    assert is_correct(hoover, "In 1935.")
    assert is_correct(hoover, "1935.0")
    assert not is_correct(hoover, "1936, after five years of work.")
    three = QARecord("sciq/x", "sciq", "How many?", ("3",))
    assert is_correct(three, "3.0 meters")
    assert not is_correct(three, "3.5 meters")
    assert not is_correct(three, "-3")


# --------------------------------------------------------------------------- YESNO


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("Yes, house tax and property tax are the same.", "yes"),
        ("No. The passage says corn ethanol returns 1.3 units.", "no"),
        ("no", "no"),
        ("True, the passage says so.", "yes"),
        ("False.", "no"),
        ("Based on the passage, yes, they are the same.", "yes"),
        ("The answer is no.\nYes, I checked the passage.", "no"),  # the committed line after the marker
        ("No, there is no limit.", "no"),
        ("Yes, there is no limit.", "yes"),  # leads with its answer; "no" later is a determiner
        ("There is no limit, yes.", None),  # both words, neither leads: unclear
        ("The passage is about taxes.", None),
        ("", None),
        ("Yesterday it was not raining.", None),  # whole words only
    ],
)
def test_extract_yes_no(text: str, said: str | None) -> None:
    assert extract_yes_no(text) == said


def test_yes_no_dispatch_on_a_boolq_item() -> None:
    tax = record("boolq", "boolq/31aa905866585b8a")  # gold "yes"
    assert is_correct(tax, "Yes, they are the same tax.")
    assert not is_correct(tax, "No, property tax is a different tax.")
    assert not is_correct(tax, "The passage describes property tax.")
    assert extract_final(tax, "Yes.") == "yes"
    assert extract_final(tax, "No, never.") == "no"
    assert extract_final(tax, "It depends.") is None


# --------------------------------------------------------------------------- NUMERIC


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("She makes 9 * 2 = $18 every day.\n#### 18", 18.0),
        ("#### 72", 72.0),
        ("The answer is 1,234.", 1234.0),
        ("The answer is $18. Then 5 more eggs are left.", 18.0),
        ("16 - 3 - 4 = 9 and 9 * 2 = 18", 18.0),
        ("so the temperature is -10 degrees", -10.0),
        ("16-3 = 13", 13.0),
        ("The answer is below.\nShe has 7 left.", 7.0),
        ("no numbers here", None),
    ],
)
def test_extract_number(text: str, value: float | None) -> None:
    assert extract_number(text) == value


def test_gsm8k_real_items() -> None:
    ducks = record("gsm8k", "gsm8k/0")
    assert ducks.answers[0] == "18"
    assert is_correct(ducks, ducks.answers[1])
    assert is_correct(ducks, "16 - 3 - 4 = 9 eggs. 9 * 2 = $18.\nThe answer is $18.")
    assert is_correct(ducks, "The answer is 18. (She sells 16 - 3 - 4 = 9 eggs.)")
    assert not is_correct(ducks, "She has 16 - 3 = 13 eggs. The answer is 26.")
    assert extract_final(ducks, "The answer is 18.00") == extract_final(ducks, "#### 18") == "18"
    sticks = record("gsm8k", "gsm8k/505")
    assert sticks.answers[0] == "1,600"
    assert is_correct(sticks, "The answer is 1600.")
    assert is_correct(sticks, "He can make 4 x 400 = 1,600 sticks.")
    cold = record("gsm8k", "gsm8k/489")
    assert is_correct(cold, "The answer is -10.")
    assert not is_correct(cold, "The answer is 10.")


def test_every_gsm8k_solution_checks_as_correct() -> None:
    records = load_task("gsm8k")
    assert all(is_correct(r, r.answers[1]) for r in records)
    assert not any(is_correct(r, "The answer is 123456789.") for r in records)


# --------------------------------------------------------------------------- CHOICE


@pytest.mark.parametrize(
    ("answer", "index"),
    [
        ("The answer is C) drought, because no clouds form.", 2),
        ("Answer: C", 2),
        ("(C)", 2),
        ("C", 2),
        ("C. drought", 2),
        ("C: drought", 2),
        ("c) drought", 2),
        ("**C**", 2),
        ("The answer is:\n\n**C**", 2),
        ("I think option C is right.", 2),
        ("I choose C.", 2),
        ("drought", 2),
        ("Drought. Without rising air no rain forms.", 2),
        ("A drought is most likely, because air cannot rise to form clouds.", 2),
        ("Rain would be unlikely, and so would fog. The answer is drought.", 2),
        ("The answer is a drought.", 2),
        ("A. fog", 0),
        ("A", 0),
        ("A because the air stays moist.", 0),
        ("B) rain", 1),
        ("It could cause fog or rain.", None),
        ('The answer is "C"', 2),
        ("The correct answer is 'C' - a drought.", 2),
        ('The answer is: "C)."', 2),
        ("The answer to the question is C) drought.", 2),
        ("The answer to this question is indeed C.", 2),
        ('The answer is "A"', 0),
        ("The answer to this question is A:", 0),
        ("The answer is 'A plant'.", None),
        ("The answer is Bob's guess.", None),
        ("The answer is E.", None),
        ("Tornadoes and droughts are both possible.", None),
        ("", None),
    ],
)
def test_extract_choice_on_arc(arc_drought: QARecord, answer: str, index: int | None) -> None:
    assert arc_drought.choices == ("fog", "rain", "drought", "tornado")
    assert extract_choice(answer, arc_drought.choices) == index


def test_article_a_is_not_choice_a() -> None:
    bank = record("csqa", "csqa/1afa02df02c908a558b4036e80242fac")
    assert bank.choices == ("bank", "library", "department store", "mall", "new york")
    assert extract_choice("A revolving door is typical of a mall.", bank.choices) == 3
    assert extract_choice("A plant needs light.", ["soil", "water", "air", "light"]) == 3
    assert extract_choice("A plant needs light.", ["soil", "water", "air", "heat"]) is None


def test_letter_beats_option_text(arc_phone: QARecord) -> None:
    assert extract_choice("B. refrigerator", arc_phone.choices) == 1
    assert is_correct(arc_phone, "A. cellular telephone")
    assert is_correct(arc_phone, "A) The cellular telephone came after the others.")
    assert not is_correct(arc_phone, "Answer: B")
    assert extract_final(arc_phone, "Answer: B") == "B"
    assert extract_final(arc_phone, "the cellular telephone") == "A"
    assert extract_final(arc_phone, "Probably something.") is None


def test_symbolic_options_are_compared_literally() -> None:
    genetics = record("mmlu", "mmlu/high_school_biology/b870e44e85c64ffa")
    assert genetics.choices == ("BB BB", "BB Bb", "Bb Bb", "Bb bb")
    assert extract_choice("Bb Bb", genetics.choices) == 2
    assert extract_choice("BB Bb", genetics.choices) == 1
    signs = record("mmlu", "mmlu/abstract_algebra/8eb0ce871d23d66a")
    assert signs.choices == ("0", "1", "-1", "12")
    assert [extract_choice(a, signs.choices) for a in ("-1", "1", "12", "C")] == [2, 1, 3, 2]
    degree = load_task("mmlu", limit=1)[0]
    assert is_correct(degree, "4") and is_correct(degree, "B") and not is_correct(degree, "2")


def test_duplicate_option_text_counts_as_the_gold() -> None:
    mortal = record("csqa", "csqa/fa1f17ca535c7e875f4f58510dc2f430")
    assert mortal.choices == ("mortal", "dying", "death", "dead", "mortal") and mortal.answers[0] == "E"
    assert is_correct(mortal, "E") and is_correct(mortal, "A") and not is_correct(mortal, "D")
    assert extract_final(mortal, "E") == extract_final(mortal, "A") == "A"


@pytest.mark.parametrize("task", ["csqa", "arc_easy", "arc_challenge", "sciq_mc"])
def test_gold_letter_and_gold_text_answers_check_as_correct(task: str) -> None:
    for item in load_task(task):
        letter, text = item.answers
        assert is_correct(item, f"The answer is {letter}) {text}. This is because of the reasons above.")
        assert is_correct(item, f"{letter}. {text}\nThe other options are wrong.")
        assert is_correct(item, text), item.id


def test_kinds_dispatch() -> None:
    assert {r.kind for r in (record("sciq_mc", "sciq_mc/a94a125f7258d255"),)} == {AnswerKind.CHOICE}
    darwin = record("sciq_mc", "sciq_mc/a94a125f7258d255")
    assert is_correct(darwin, "A. darwin") and not is_correct(darwin, "Linnaeus")
    assert extract_final(darwin, "Linnaeus") == "C"


def test_reciting_the_option_list_commits_to_nothing() -> None:
    # real SmolLM2 output on ARC-Easy MCAS_2000_4_6: it repeats the options instead of choosing
    choices = ("cellular telephone", "television", "refrigerator", "airplane")
    recital = "A. cellular telephone\nB. television\nC. refrigerator\nD. airplane"
    assert extract_choice(recital, choices) is None
    assert extract_choice("A. cellular telephone\n\nC. refrigerator\n\nD. airplane", choices) is None
    # ... unless it then names one after a marker
    assert extract_choice(recital + "\nThe answer is D.", choices) == 3
    # a single labelled line is still a choice
    assert extract_choice("C. refrigerator\nIt keeps food cold.", choices) == 2
