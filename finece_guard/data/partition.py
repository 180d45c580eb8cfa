"""Deterministic train/dev/test partition of QA records, derived from the record id alone.

A hash partition needs no split files, never changes when a dataset grows or is filtered, and
is identical on every machine and Python version, so a FineCE adapter trained on ``train`` is
never evaluated on an item it saw. Changing the salt or the thresholds re-deals every item and
silently leaks training data into test sets: don't.

Two ids share one partition when they name the same underlying item:

* the task prefix is not hashed, so ``sciq/<h>`` (open) and ``sciq_mc/<h>`` (multiple choice)
  of the same question land together;
* an occurrence suffix ``#n`` (given to exact duplicates inside a dataset, e.g. MMLU) is not
  hashed, so duplicates land together.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final, Literal

Partition = Literal["train", "dev", "test"]

#: All partitions, in order.
PARTITIONS: Final[tuple[Partition, ...]] = ("train", "dev", "test")
#: Upper bounds of the hash position in [0, 1) for train and dev (50 / 20 / 30).
TRAIN_END: Final = 0.5
DEV_END: Final = 0.7

_SALT: Final = b"finece-guard/partition/v1\x00"
_DUPLICATE_SUFFIX = re.compile(r"#\d+$")


def item_key(record_id: str) -> str:
    """The part of a record id that is hashed: no task prefix, no duplicate suffix."""
    _, _, rest = record_id.partition("/")
    return _DUPLICATE_SUFFIX.sub("", rest or record_id)


def hash_position(record_id: str) -> float:
    """The record's position in [0, 1): sha256(salt + item key), first 8 bytes, big-endian."""
    digest = hashlib.sha256(_SALT + item_key(record_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def partition_of(record_id: str) -> Partition:
    """``"train"`` (50%), ``"dev"`` (20%) or ``"test"`` (30%); fixed forever for a given id."""
    position = hash_position(record_id)
    if position < TRAIN_END:
        return "train"
    if position < DEV_END:
        return "dev"
    return "test"
