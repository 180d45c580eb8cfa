"""The trainer's forgery augmentation, dev forgery check and length-grouped batching, on a tiny model.

Uses the random 2-layer Llama and byte-level tokenizer of ``test_training`` (no download).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finece_guard.errors import ConfigError
from finece_guard.training.examples import examples_from
from finece_guard.training.forgery_check import forgery_pairs, forgery_shift
from finece_guard.training.trainer import ScoreDataset, ScoreTrainer, TrainConfig, train_adapter
from tests.unit.test_training import (  # noqa: F401  (fixtures)
    one_torch_thread,
    question,
    tiny_model_dir,
    write_jsonl,
)


def test_forgery_pairs_keep_the_clean_state_and_add_one_raising_payload() -> None:
    ex = examples_from([question(f"toy:toy/{i}") for i in range(30)])
    pairs = forgery_pairs(ex, limit=20)
    assert len(pairs) == 20
    for clean, forged, held_out in pairs:
        assert clean.kind.value == "final" and clean.payload is None
        assert forged.label == clean.label and forged.answer != clean.answer
        assert forged.answer is not None and clean.answer is not None
        assert clean.answer in forged.answer or clean.answer.split(" ")[0] in forged.answer
        assert isinstance(held_out, bool)
    assert {h for _, _, h in forgery_pairs(ex, limit=100)} == {True, False}


def test_forgery_shift_is_forged_minus_clean() -> None:
    out = forgery_shift([0.2, 0.4, 0.1], [0.8, 0.4, 0.0], [("a@end", False), ("b@middle", True), ("a@middle", False)])
    assert out["mean_shift"] == pytest.approx((0.6 + 0.0 - 0.1) / 3)
    assert out["mean_shift_trained_payloads"] == pytest.approx(0.25)
    assert out["mean_shift_held_out_payloads"] == pytest.approx(0.0)
    assert out["by_payload"] == {"a": pytest.approx(0.25), "b": pytest.approx(0.0)}


@pytest.mark.parametrize("forgery_set", ["fixed", "varied"])
def test_training_with_forgery_rate_adds_twins_and_logs_the_dev_check(
    tiny_model_dir: Path,  # noqa: F811  (the fixture)
    tmp_path: Path,
    forgery_set: str,
) -> None:
    data = [question(f"toy:toy/{i}", (0.3, 0.4, float(i % 2))) for i in range(24)]
    path = write_jsonl(tmp_path / "toy.jsonl", data)
    cfg = TrainConfig(max_steps=3, lr=5e-3, batch_size=4, dev_fraction=0.25, device="cpu", max_length=1024,
                      forgery_rate=1.0, forgery_set=forgery_set, group_by_length=True)  # fmt: skip
    report = train_adapter([path], tmp_path / "adapter", model=tiny_model_dir, config=cfg, home=tmp_path)
    c = report.counts
    n_train_answer_states = 2 * c["train_questions"]  # one partial + one final per question
    assert c["train_forged"] == n_train_answer_states
    generated = c["train_forged_generated_wording"]
    assert (generated == 0) if forgery_set == "fixed" else (0 < generated <= c["train_forged"])
    assert c["train_states"] == 3 * c["train_questions"] + n_train_answer_states
    assert c["dev_forgery_pairs"] == c["dev_questions"] > 0
    for when in (report.dev_before, report.dev_after):
        assert when["forgery"]["n_pairs"] == c["dev_forgery_pairs"]
        assert isinstance(when["forgery"]["mean_shift"], float)


def test_an_unknown_forgery_set_is_refused() -> None:
    with pytest.raises(ConfigError, match="forgery_set='all'"):
        TrainConfig(forgery_set="all")


def test_length_grouped_sampler_batches_similar_lengths(tmp_path: Path) -> None:
    import torch
    from transformers import TrainingArguments

    from finece_guard.training.trainer import Encoded
    from finece_guard.types import CheckpointKind

    items = [Encoded([1] * n, (1.0,) + (0.0,) * 9, CheckpointKind.FINAL, 0.0) for n in [5, 400] * 320]
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, use_cpu=True, report_to="none")
    model = torch.nn.Linear(1, 1)
    grouped = ScoreTrainer(model=model, args=args, train_dataset=ScoreDataset(items), digit_ids=torch.arange(10),
                            group_by_length=True)._get_train_sampler()  # fmt: skip
    order = list(iter(grouped))
    assert sorted(order) == list(range(640))
    batches = [order[i : i + 8] for i in range(0, 640, 8)]
    mixed = sum(len({len(items[j].input_ids) for j in b}) > 1 for b in batches)
    assert mixed <= 4  # 4 mega-batches sorted by length: at most one mixed batch each (random order: ~all 80)


def test_warm_start_continues_the_given_adapter(
    tiny_model_dir: Path,  # noqa: F811  (the fixture)
    tmp_path: Path,
) -> None:
    data = [question(f"toy:toy/{i}", (0.9, 0.9, 0.9)) for i in range(24)]
    path = write_jsonl(tmp_path / "toy.jsonl", data)
    common = {"lr": 5e-3, "batch_size": 4, "dev_fraction": 0.25, "device": "cpu", "max_length": 1024}
    first = train_adapter([path], tmp_path / "a1", model=tiny_model_dir, config=TrainConfig(max_steps=10, **common),
                          home=tmp_path)  # fmt: skip
    cfg = TrainConfig(max_steps=2, init_adapter=str(tmp_path / "a1"), **common)
    second = train_adapter([path], tmp_path / "a2", model=tiny_model_dir, config=cfg, home=tmp_path)
    # "before" of the warm start is the first adapter on the same dev states, not the untrained LoRA
    assert second.dev_before["mean_prediction"] == pytest.approx(first.dev_after["mean_prediction"], abs=1e-4)
    assert second.dev_before["mean_prediction"] != pytest.approx(first.dev_before["mean_prediction"], abs=1e-3)
    wrong_rank = TrainConfig(max_steps=1, lora_rank=4, init_adapter=str(tmp_path / "a1"), **common)
    with pytest.raises(ConfigError, match="rank"):
        train_adapter([path], tmp_path / "a3", model=tiny_model_dir, home=tmp_path, config=wrong_rank)


def test_time_budget_stops_training_and_still_writes_the_adapter(
    tiny_model_dir: Path,  # noqa: F811  (the fixture)
    tmp_path: Path,
) -> None:
    data = [question(f"toy:toy/{i}") for i in range(24)]
    path = write_jsonl(tmp_path / "toy.jsonl", data)
    cfg = TrainConfig(max_steps=10_000, batch_size=4, dev_fraction=0.25, device="cpu", max_length=1024,
                      max_minutes=0.0001)  # fmt: skip
    report = train_adapter([path], tmp_path / "a", model=tiny_model_dir, config=cfg, home=tmp_path)
    assert report.steps == 1  # the budget is checked after every step
    assert (tmp_path / "a" / "adapter_model.safetensors").is_file()


def test_stop_at_step_keeps_the_planned_schedule(
    tiny_model_dir: Path,  # noqa: F811  (the fixture)
    tmp_path: Path,
) -> None:
    """--stop-at-step reproduces a run a time budget stopped: same step, same (planned) schedule."""
    data = [question(f"toy:toy/{i}") for i in range(24)]
    path = write_jsonl(tmp_path / "toy.jsonl", data)
    cfg = TrainConfig(max_steps=40, batch_size=4, dev_fraction=0.25, device="cpu", max_length=1024,
                      warmup_ratio=0.0, stop_at_step=3)  # fmt: skip
    report = train_adapter([path], tmp_path / "a", model=tiny_model_dir, config=cfg, home=tmp_path)
    assert report.steps == 3
    log = [json.loads(line) for line in (tmp_path / "a" / "training_log.jsonl").read_text().splitlines()]
    lrs = [row["learning_rate"] for row in log if "learning_rate" in row]
    assert lrs and lrs[-1] > 0.9 * cfg.lr  # a 3-step schedule would be at 1/3 of lr by now
    with pytest.raises(ConfigError, match="stop_at_step"):
        TrainConfig(stop_at_step=0)
