"""Answer fragments (cut points) and their clustering / medoid (paper Alg. 1, eqs. 3-4)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from finece_guard.data.fragments import (
    MIN_FRAGMENT_CHARS,
    MIN_WORDS_FOR_MIDPOINT,
    boundaries,
    cluster,
    first_fragment,
    medoid,
    midpoint_cut,
    next_fragment,
)
from finece_guard.errors import ConfigError


def _pieces(text: str) -> list[str]:
    return [text[:cut] for cut in boundaries(text)]


def _unit(*rows: list[float]) -> NDArray[np.float32]:
    arr = np.asarray(rows, dtype=np.float32)
    out: NDArray[np.float32] = arr / np.linalg.norm(arr, axis=1, keepdims=True)
    return out


def _angle(degrees: float) -> list[float]:
    rad = np.deg2rad(degrees)
    return [float(np.cos(rad)), float(np.sin(rad))]


# --------------------------------------------------------------------------- boundaries


def test_sentence_ends_are_cuts_that_keep_the_punctuation() -> None:
    text = "Paris is the capital. Is it in France? Yes it is, surely! It is old."
    assert _pieces(text) == [
        "Paris is the capital.",
        "Paris is the capital. Is it in France?",
        "Paris is the capital. Is it in France? Yes it is, surely!",
    ]


def test_line_breaks_are_cuts_and_blank_lines_give_one_cut() -> None:
    text = "The answer is Paris\n\n\nBecause it is the capital.\nThat is all for now."
    assert _pieces(text) == [
        "The answer is Paris",
        "The answer is Paris\n\n\nBecause it is the capital.",
    ]


def test_no_cut_keeps_trailing_white_space() -> None:
    text = "First sentence here.   \n  Second sentence here.  \t\nThird one."
    for piece in _pieces(text):
        assert piece == piece.rstrip()
    assert _pieces(text) == ["First sentence here.", "First sentence here.   \n  Second sentence here."]


def test_only_interior_boundaries_count() -> None:
    assert boundaries("The capital of France is Paris.") == []
    assert boundaries("The capital of France is Paris.   \n\n  \t") == []
    assert boundaries("The capital of France is Paris.\nIt is big.\n") == [len("The capital of France is Paris.")]


def test_decimal_points_are_not_sentence_ends() -> None:
    text = "Pi is roughly 3.14 and e is 2.718 or so. Both are irrational."
    assert _pieces(text) == ["Pi is roughly 3.14 and e is 2.718 or so."]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Use a tool, e.g. a hammer, to hit the nail. Then stop.", "Use a tool, e.g. a hammer, to hit the nail."),
        ("That is, i.e. the gas we breathe out. Plants use it.", "That is, i.e. the gas we breathe out."),
        ("I asked Dr. Smith and Mr. Jones about it. They agreed.", "I asked Dr. Smith and Mr. Jones about it."),
        ("It was written by J. K. Rowling herself. Everyone knows.", "It was written by J. K. Rowling herself."),
    ],
)
def test_abbreviations_and_initials_are_not_sentence_ends(text: str, expected: str) -> None:
    assert _pieces(text) == [expected]


def test_a_sentence_ending_in_a_number_is_a_cut() -> None:
    # maths answers mostly end their steps in a number; those are sentence ends
    text = "She has 16 - 3 - 4 = 9. She sells them for 9 * 2 = 18. The answer is 18."
    assert _pieces(text) == ["She has 16 - 3 - 4 = 9.", "She has 16 - 3 - 4 = 9. She sells them for 9 * 2 = 18."]


def test_a_list_number_at_a_line_start_is_not_a_sentence_end() -> None:
    text = "Here are the steps:\n1. Mix flour with water. Then bake it."
    assert _pieces(text) == ["Here are the steps:", "Here are the steps:\n1. Mix flour with water."]


def test_too_short_fragments_are_skipped() -> None:
    assert boundaries("Yes. Ok. Maybe. So it goes on.") == [len("Yes. Ok. Maybe.")]
    assert len("Yes. Ok. Maybe.") >= MIN_FRAGMENT_CHARS > len("Yes. Ok.")
    # leading white space does not count towards the minimum
    assert boundaries("      Yes. It is right here.") == []


# --------------------------------------------------------------------------- midpoint / fragments


def test_midpoint_cut_after_the_middle_word() -> None:
    text = "one two three four five six seven"
    cut = midpoint_cut(text)
    assert cut is not None
    assert text[:cut] == "one two three"
    assert midpoint_cut("alpha  beta\tgamma delta epsilon zeta") == len("alpha  beta\tgamma")


def test_midpoint_cut_needs_enough_words() -> None:
    short = " ".join(["w"] * (MIN_WORDS_FOR_MIDPOINT - 1))
    assert midpoint_cut(short) is None
    assert midpoint_cut(short + " w") is not None
    assert midpoint_cut("") is None


def test_first_fragment_prefers_a_boundary_then_the_midpoint() -> None:
    assert first_fragment("Paris is the capital. It is in France.") == "Paris is the capital."
    assert first_fragment("Paris is the capital of France and a big city") == "Paris is the capital of"
    assert first_fragment("Paris, surely.") is None
    assert first_fragment("") is None


def test_next_fragment_extends_the_prefix_keeping_the_leading_space() -> None:
    prefix = "Paris is the capital."
    assert next_fragment(prefix, " It lies on the Seine. It is old.") == prefix + " It lies on the Seine."
    assert next_fragment(prefix, "\n\nIt lies on the Seine.\nIt is old.") == prefix + "\n\nIt lies on the Seine."
    # no boundary: cut at the continuation's middle word
    assert next_fragment(prefix, " it lies on the river Seine in the north") == prefix + " it lies on the"


def test_next_fragment_is_none_when_the_continuation_just_ends() -> None:
    assert next_fragment("Paris is the capital.", " It is old.") is None
    assert next_fragment("Paris is the capital.", "   ") is None
    assert next_fragment("Paris is the capital.", "") is None


# --------------------------------------------------------------------------- cluster


def test_cluster_groups_obvious_directions() -> None:
    # two tight bundles ~90 degrees apart, interleaved in sample order
    emb = _unit(_angle(0), _angle(90), _angle(3), _angle(88), _angle(-2))
    assert cluster(emb, threshold=0.3) == [[0, 2, 4], [1, 3]]


def test_cluster_threshold_decides_what_merges() -> None:
    # cosine distances: 0-1 about 0.03 (14 deg), {0,1}-2 about 0.29-0.41 (40-54 deg)
    emb = _unit(_angle(0), _angle(14), _angle(54))
    assert cluster(emb, threshold=0.0) == [[0], [1], [2]]
    assert cluster(emb, threshold=0.1) == [[0, 1], [2]]
    # average linkage: D({0,1}, 2) = mean(1-cos 54, 1-cos 40) ~ 0.323
    assert cluster(emb, threshold=0.30) == [[0, 1], [2]]
    assert cluster(emb, threshold=0.35) == [[0, 1, 2]]
    assert cluster(emb, threshold=2.0) == [[0, 1, 2]]


def test_cluster_average_linkage_differs_from_single_linkage() -> None:
    # 2 is within 0.2 of 1 (single linkage would merge it) but on average 0.33 from {0, 1}
    emb = _unit(_angle(0), _angle(20), _angle(56))
    single_distance = 1 - np.cos(np.deg2rad(36))
    assert single_distance < 0.25
    assert cluster(emb, threshold=0.25) == [[0, 1], [2]]


def test_cluster_identical_vectors_merge_at_threshold_zero() -> None:
    emb = _unit([1.0, 0.0], [1.0, 0.0], [0.0, 1.0])
    assert cluster(emb, threshold=0.0) == [[0, 1], [2]]


def test_cluster_max_clusters_caps_m() -> None:
    emb = _unit(_angle(0), _angle(45), _angle(90), _angle(135), _angle(2))
    free = cluster(emb, threshold=0.01)
    assert len(free) == 4
    capped = cluster(emb, threshold=0.01, max_clusters=2)
    assert len(capped) == 2
    assert sorted(i for g in capped for i in g) == [0, 1, 2, 3, 4]
    assert any({0, 4} <= set(g) for g in capped)
    # a cap that the threshold already satisfies changes nothing
    assert cluster(emb, threshold=0.01, max_clusters=4) == free
    assert cluster(emb, threshold=0.01, max_clusters=1) == [[0, 1, 2, 3, 4]]


def test_cluster_max_clusters_is_exact_when_merge_heights_tie() -> None:
    # mutually orthogonal fragments: every merge happens at distance 1.0
    emb = np.eye(5, dtype=np.float32)
    assert len(cluster(emb, threshold=0.3)) == 5
    for cap in (1, 2, 3, 4):
        groups = cluster(emb, threshold=0.3, max_clusters=cap)
        assert len(groups) == cap
        assert sorted(i for g in groups for i in g) == [0, 1, 2, 3, 4]


def test_cluster_groups_are_ordered_by_first_member() -> None:
    emb = _unit(_angle(90), _angle(0), _angle(91), _angle(1), _angle(180))
    groups = cluster(emb, threshold=0.2)
    assert groups == [[0, 2], [1, 3], [4]]
    assert all(g == sorted(g) for g in groups)


def test_cluster_single_and_empty() -> None:
    assert cluster(_unit([0.3, 0.4]), threshold=0.3) == [[0]]
    assert cluster(_unit([0.3, 0.4]), threshold=0.3, max_clusters=1) == [[0]]
    assert cluster(np.zeros((0, 4), dtype=np.float32), threshold=0.3) == []


@pytest.mark.parametrize(("threshold", "max_clusters"), [(-0.1, None), (2.1, None), (0.3, 0), (0.3, -2)])
def test_cluster_rejects_bad_settings(threshold: float, max_clusters: int | None) -> None:
    with pytest.raises(ConfigError):
        cluster(_unit([1.0, 0.0], [0.0, 1.0]), threshold=threshold, max_clusters=max_clusters)


# --------------------------------------------------------------------------- medoid


def test_medoid_differs_from_the_member_nearest_the_plain_mean() -> None:
    # raw vectors at 0, 30 and 50 degrees; the 30-degree one is 5x longer and drags the plain mean
    emb = np.asarray([_angle(0), [5 * x for x in _angle(30)], _angle(50)], dtype=np.float32)
    plain_mean = emb.mean(axis=0)
    nearest_plain_mean = int(np.argmin(np.linalg.norm(emb - plain_mean, axis=1)))
    assert nearest_plain_mean == 2  # the premise of this test
    # by cosine distance (directions only) the 30-degree member is central
    assert medoid(emb) == 1
    assert medoid(_unit(*emb.tolist())) == 1


def test_medoid_is_not_simply_the_first_member() -> None:
    emb = _unit(_angle(0), _angle(30), _angle(15))
    assert medoid(emb) == 2


def test_medoid_of_a_subset_indexes_the_full_array() -> None:
    # members 1, 3, 4 at 40, 50, 60 degrees: their medoid is 3; the others are far away
    emb = _unit(_angle(-90), _angle(40), _angle(180), _angle(50), _angle(60))
    assert medoid(emb, [1, 3, 4]) == 3
    assert medoid(emb, [4, 3, 1]) == 3


def test_medoid_of_one_or_two_is_the_first() -> None:
    emb = _unit(_angle(0), _angle(30), _angle(60))
    assert medoid(emb, [2]) == 2
    assert medoid(emb, [2, 0]) == 2
    assert medoid(emb[:1]) == 0


def test_medoid_of_nothing_is_an_error() -> None:
    with pytest.raises(ConfigError):
        medoid(_unit([1.0, 0.0]), [])
    with pytest.raises(ConfigError):
        medoid(np.zeros((0, 2), dtype=np.float32))
