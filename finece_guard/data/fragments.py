"""Answer fragments and their clustering, for Monte-Carlo confidence data (paper Alg. 1, eqs. 3-4).

Alg. 1 labels *partial* answers: it truncates sampled answers into fragments, groups fragments
that mean the same thing (bottom-up clustering, cosine distance, average linkage, until the
distance threshold) and spends Monte-Carlo completions only on one representative per cluster.

* :func:`first_fragment` cuts a text at its first interior boundary: a line break or a sentence
  end. Small models often answer in one sentence; such an answer has no interior boundary and is
  cut at its middle word instead, so it still yields a partial state (the strategies
  ``periodic`` and ``entropy`` checkpoint mid-sentence at run time too).
* :func:`cluster` is scipy's hierarchical clustering; :func:`medoid` picks the member closest on
  average to the others (the "semantic centroid": a real fragment, not an average vector).

Everything here is pure: embeddings come in as arrays.
"""

from __future__ import annotations

import re

import numpy as np
from numpy.typing import NDArray
from scipy.cluster.hierarchy import cut_tree, fcluster, linkage
from scipy.spatial.distance import pdist, squareform

from finece_guard.errors import ConfigError

#: a line break, or ".", "!", "?" followed by white space (the cut keeps the punctuation)
_BOUNDARY = re.compile(r"\n|(?<=[.!?])\s")
#: fewer content characters than this before a boundary: not worth a partial state
MIN_FRAGMENT_CHARS = 12
#: a one-sentence answer with at least this many words is cut at its middle word
MIN_WORDS_FOR_MIDPOINT = 6
#: a period that does not end a sentence: an abbreviation, an initial ("J."), or a list number
#: at the start of a line ("1. Mix ..."). A sentence that ends in a number ("... = 18. So ...")
#: does end there: maths answers are mostly such sentences.
_ABBREVIATION = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|Mr|Mrs|Dr|St|No)|\b[A-Z]|(?:^|\n)[ \t]*\d+)\.\Z")


def boundaries(text: str) -> list[int]:
    """Character offsets where ``text`` may be cut: after a sentence end or before a line break.

    Only interior boundaries count (something other than white space must follow), a cut never
    leaves trailing white space, and decimal points, abbreviations ("e.g.", "Dr.") and list numbers
    ("1. ") are skipped.
    """
    end = len(text.rstrip())
    cuts: list[int] = []
    for match in _BOUNDARY.finditer(text):
        cut = len(text[: match.start()].rstrip())
        if cut >= end or len(text[:cut].strip()) < MIN_FRAGMENT_CHARS:
            continue
        if text[cut - 1 : cut] == "." and _ABBREVIATION.search(text[:cut]):
            continue
        if not cuts or cut > cuts[-1]:
            cuts.append(cut)
    return cuts


def midpoint_cut(text: str) -> int | None:
    """Offset after the middle word of a text with enough words, else None."""
    words = list(re.finditer(r"\S+", text))
    if len(words) < MIN_WORDS_FOR_MIDPOINT:
        return None
    return words[len(words) // 2 - 1].end()


def first_fragment(text: str) -> str | None:
    """``text`` up to its first interior boundary (or middle word); None if it cannot be cut."""
    cuts = boundaries(text)
    cut = cuts[0] if cuts else midpoint_cut(text)
    return text[:cut] if cut else None


def next_fragment(prefix: str, continuation: str) -> str | None:
    """``prefix`` extended by ``continuation`` up to the continuation's first interior boundary.

    The continuation's leading white space is kept (``prefix`` ends at a cut without it). None
    when the continuation ends before another boundary: then the state would be a complete answer.
    """
    stripped = continuation.lstrip()
    lead = continuation[: len(continuation) - len(stripped)]
    cuts = boundaries(stripped)
    cut = cuts[0] if cuts else midpoint_cut(stripped)
    return prefix + lead + stripped[:cut] if cut else None


def cluster(embeddings: NDArray[np.float32], *, threshold: float, max_clusters: int | None = None) -> list[list[int]]:
    """Groups of row indices: average-linkage clustering on cosine distance, cut at ``threshold``.

    ``max_clusters`` caps m (the data-construction cost is linear in m): if the threshold leaves
    more clusters, the tree is cut into exactly ``max_clusters`` instead. Groups are ordered by
    their first member, members ascending.
    """
    if not 0.0 <= threshold <= 2.0:
        raise ConfigError(f"cluster threshold={threshold} must be a cosine distance in [0, 2] (e.g. 0.3)")
    if max_clusters is not None and max_clusters < 1:
        raise ConfigError(f"max_clusters={max_clusters} must be at least 1")
    n = len(embeddings)
    if n == 0:
        return []
    if n == 1:
        return [[0]]
    tree = linkage(np.asarray(embeddings, dtype=np.float64), method="average", metric="cosine")
    labels = fcluster(tree, t=threshold, criterion="distance")
    if max_clusters is not None and labels.max() > max_clusters:
        # not fcluster(criterion="maxclust"): when merge heights tie (equidistant fragments) it finds
        # no height giving at most max_clusters but one, and returns a single cluster
        labels = cut_tree(tree, n_clusters=max_clusters).ravel()
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(labels.tolist()):
        groups.setdefault(int(label), []).append(index)
    return sorted(groups.values(), key=lambda g: g[0])


def medoid(embeddings: NDArray[np.float32], members: list[int] | None = None) -> int:
    """Index (into ``embeddings``) of the member with the least mean cosine distance to the others."""
    idx = list(range(len(embeddings))) if members is None else list(members)
    if not idx:
        raise ConfigError("medoid of an empty group")
    if len(idx) <= 2:
        return idx[0]
    dist = squareform(pdist(np.asarray(embeddings, dtype=np.float64)[idx], metric="cosine"))
    return idx[int(np.argmin(dist.mean(axis=1)))]
