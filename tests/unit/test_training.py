"""Unit tests for finece_guard.training: soft targets, the by-question split, prompt tokens, loss, trainer.

Most tests use a tiny byte-level tokenizer (one token per byte, ChatML template) and a random
2-layer Llama, so they need no download and run in seconds. The rendering checks against the
real SmolLM2 tokenizer need the embedded model converted by `make setup` (marked ``needs_model``;
tests/unit/conftest.py hides the model from every other test) and fail (not skip) without it.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import typer
from typer.testing import CliRunner

from finece_guard.adapters import LORA_TARGETS, AdapterManifest, check_binding
from finece_guard.backends.model_store import DEFAULT_MODEL_NAME, sha256_file, weights_sha256
from finece_guard.commands.train import train
from finece_guard.config import load_settings
from finece_guard.data.construction import LabelledState, QuestionData, read_dataset
from finece_guard.errors import AdapterMismatchError, ConfigError
from finece_guard.prompts import ASSISTANT_PREFIX, build_scorer_messages
from finece_guard.training.examples import (
    TrainingExample,
    check_disjoint,
    examples_from,
    expected_level,
    soft_target,
    split_by_question,
)
from finece_guard.training.trainer import (
    TRAINING_LOG,
    Encoded,
    PromptEncoder,
    TrainConfig,
    batch_loss,
    check_prompt_tokens,
    collate,
    last_logits,
    predict,
    score_loss,
    train_adapter,
)
from finece_guard.types import CheckpointKind

K = CheckpointKind


# --------------------------------------------------------------------------- helpers and fixtures


def question(key: str, labels: tuple[float, float, float] = (0.5, 0.55, 1.0), *, task: str = "toy") -> QuestionData:
    """One question with a question-only, a partial and a final state."""
    record_id = key.split(":", 1)[1] if ":" in key else key
    states = (
        LabelledState(K.QUESTION, None, labels[0], 4, 0),
        LabelledState(K.PARTIAL, f"Partial answer of {key}", labels[1], 4, 1),
        LabelledState(K.FINAL, f"Complete answer of {key}.", labels[2], 1, -1),
    )
    return QuestionData(
        key=key, task=task, record_id=record_id, question=f"Question {key}?\nAnswer briefly.", k=4, levels=1,
        clusters=1, reps_per_level=(1,), generations=8, states=states,
    )  # fmt: skip


def write_jsonl(path: Path, data: list[QuestionData]) -> Path:
    path.write_text("".join(q.to_json() + "\n" for q in data))
    return path


def tiny_tokenizer() -> Any:
    """Byte-level tokenizer with no merges (every byte, so every digit, is one token) and a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
    )  # fmt: skip
    tok.chat_template = (
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
        "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    return tok


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tiny model gains nothing from threads, and on busy shared cores they cost several times over."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama (hidden 32, 4 heads, 2 KV heads) saved as an HF folder with the tiny tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("models") / "TinyLlama-test"
    tok = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id, tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def tiny_encoder(tiny_model_dir: Path) -> PromptEncoder:
    from transformers import AutoTokenizer

    return PromptEncoder(AutoTokenizer.from_pretrained(str(tiny_model_dir)), max_length=2048)


@pytest.fixture(scope="module")
def smollm_tokenizer() -> Any:
    from transformers import AutoTokenizer

    folder = load_settings().home / "models" / DEFAULT_MODEL_NAME
    if not (folder / "tokenizer.json").is_file():
        pytest.fail(f"{folder} has no tokenizer.json: convert the embedded model first (`make setup`)")
    return AutoTokenizer.from_pretrained(str(folder))


# --------------------------------------------------------------------------- soft targets


@pytest.mark.parametrize("label", [0.0, 1.0, 0.55, 0.5, 1 / 3, 0.123, 7 / 9, 0.999, 0.001])
def test_soft_target_mean_equals_label(label: float) -> None:
    probs = soft_target(label)
    assert len(probs) == 10
    assert all(p >= 0.0 for p in probs)
    assert sum(probs) == pytest.approx(1.0, abs=1e-12)
    assert expected_level(probs) == pytest.approx(label, abs=1e-12)
    support = [i for i, p in enumerate(probs) if p > 0]
    assert len(support) <= 2 and (len(support) == 1 or support[1] == support[0] + 1)  # sharpest: neighbours only


@pytest.mark.parametrize(
    ("label", "expected"),
    [(0.0, {0: 1.0}), (1.0, {9: 1.0}), (0.55, {4: 0.05, 5: 0.95}), (5 / 9, {5: 1.0}), (0.5, {4: 0.5, 5: 0.5})],
)
def test_soft_target_puts_mass_on_floor_and_ceil(label: float, expected: dict[int, float]) -> None:
    probs = soft_target(label)
    got = {i: p for i, p in enumerate(probs) if p > 1e-12}
    assert got.keys() == expected.keys()
    for i, p in expected.items():
        assert got[i] == pytest.approx(p, abs=1e-9)


@pytest.mark.parametrize("label", [-0.01, 1.01, math.nan, math.inf, True])
def test_soft_target_rejects_invalid_labels(label: float) -> None:
    with pytest.raises(ConfigError, match="in \\[0, 1\\]"):
        soft_target(label)


def test_examples_carry_state_and_target() -> None:
    q = question("toy:toy/1", (0.25, 0.55, 0.0))
    ex = examples_from([q])
    assert [e.kind for e in ex] == [K.QUESTION, K.PARTIAL, K.FINAL]
    assert ex[0].answer is None and ex[1].answer == "Partial answer of toy:toy/1"
    assert [expected_level(e.target) for e in ex] == pytest.approx([0.25, 0.55, 0.0])
    assert ex[1].messages() == build_scorer_messages(q.question, ex[1].answer, K.PARTIAL)


# --------------------------------------------------------------------------- split by question


def _many(n: int, seed: int = 0) -> list[QuestionData]:
    rng = random.Random(seed)
    return [question(f"toy:toy/{rng.getrandbits(48):x}") for _ in range(n)]


def test_split_by_question_never_leaks_states() -> None:
    data = _many(400)
    train_q, dev_q = split_by_question(data, 0.1)
    assert len(train_q) + len(dev_q) == len(data)
    assert {q.key for q in train_q}.isdisjoint({q.key for q in dev_q})
    train_keys = {e.key for e in examples_from(train_q)}
    dev_keys = {e.key for e in examples_from(dev_q)}
    assert train_keys.isdisjoint(dev_keys)
    assert len(examples_from(dev_q)) == 3 * len(dev_q)  # every state of a dev question is in dev
    assert 0.05 < len(dev_q) / len(data) < 0.16


def test_split_is_deterministic_and_order_free() -> None:
    data = _many(200, seed=1)
    shuffled = list(data)
    random.Random(7).shuffle(shuffled)
    dev_a = {q.key for q in split_by_question(data, 0.2)[1]}
    dev_b = {q.key for q in split_by_question(shuffled, 0.2)[1]}
    assert dev_a == dev_b and dev_a
    assert split_by_question(data, 0.0)[1] == []
    bigger = {q.key for q in split_by_question(data, 0.4)[1]}
    assert dev_a <= bigger  # growing the fraction only adds questions to dev


def test_split_keeps_one_item_across_tasks_together() -> None:
    rng = random.Random(3)
    data: list[QuestionData] = []
    for _ in range(100):
        h = f"{rng.getrandbits(40):x}"
        data += [question(f"sciq:sciq/{h}", task="sciq"), question(f"sciq+passage:sciq/{h}", task="sciq+passage"),
                 question(f"sciq_mc:sciq_mc/{h}", task="sciq_mc")]  # fmt: skip
    train_q, dev_q = split_by_question(data, 0.3)
    item = lambda q: q.record_id.split("/", 1)[1]  # noqa: E731
    assert dev_q and {item(q) for q in train_q}.isdisjoint({item(q) for q in dev_q})


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 2.0])
def test_split_rejects_bad_fraction(fraction: float) -> None:
    with pytest.raises(ConfigError, match="dev_fraction"):
        split_by_question(_many(3), fraction)


def test_explicit_dev_data_must_not_share_questions() -> None:
    a, b, c = question("toy:toy/a"), question("toy:toy/b"), question("other:other/b", task="other")
    check_disjoint([a], [b])
    with pytest.raises(ConfigError, match="both the training data and --dev-data"):
        check_disjoint([a, b], [c])  # same item "b" under another task


# --------------------------------------------------------------------------- prompt rendering and tokens


@pytest.mark.needs_model
def test_real_tokenizer_prompt_ends_at_assistant_prefix(smollm_tokenizer: Any) -> None:
    enc = PromptEncoder(smollm_tokenizer)
    assert [smollm_tokenizer.decode([i]) for i in enc.digit_ids] == [str(d) for d in range(10)]
    for ex in examples_from([question("toy:toy/r", (0.2, 0.4, 1.0))]):
        messages = ex.messages()
        text = enc.render(messages)
        assert text.endswith("<|im_start|>assistant\n" + ASSISTANT_PREFIX)
        ids = enc.ids(messages)
        served = smollm_tokenizer.apply_chat_template(
            messages, continue_final_message=True, add_generation_prompt=False, tokenize=True, return_dict=False
        )
        assert list(served) == ids  # the tokens vLLM feeds the model
        for d, digit_id in enumerate(enc.digit_ids):
            assert smollm_tokenizer.encode(text + str(d), add_special_tokens=False) == [*ids, digit_id]
        check_prompt_tokens(smollm_tokenizer, messages, enc.digit_ids)


def test_target_position_is_the_last_prompt_token(tiny_encoder: PromptEncoder) -> None:
    items = [tiny_encoder.encode(e) for e in examples_from([question("toy:toy/x"), question("toy:toy/yy")])]
    assert all(i is not None for i in items)
    encoded = [i for i in items if i is not None]
    batch = collate(encoded, pad_id=0)
    width = batch["input_ids"].shape[1]
    prefix_ids = tiny_encoder.tokenizer.encode(ASSISTANT_PREFIX, add_special_tokens=False)
    for row, e in enumerate(encoded):
        assert e.input_ids[-len(prefix_ids) :] == prefix_ids  # the prompt ends with the assistant prefix
        assert batch["input_ids"][row, -1].item() == e.input_ids[-1]
        assert batch["attention_mask"][row, -1].item() == 1
        assert batch["attention_mask"][row].sum().item() == len(e.input_ids)
        assert batch["position_ids"][row, -1].item() == len(e.input_ids) - 1
        assert batch["position_ids"][row, width - len(e.input_ids)].item() == 0
        assert batch["target"][row].tolist() == pytest.approx(list(e.target))


def test_tokenizer_whose_space_merges_with_digits_is_refused() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from finece_guard.errors import SetupError

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    vocab.update({f"Ġ{d}": len(vocab) + d for d in range(10)})  # " 7" is one token, as in some BPE vocabularies
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[("Ġ", str(d)) for d in range(10)]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="Ā")
    tok.chat_template = tiny_tokenizer().chat_template
    enc = PromptEncoder(tok)
    with pytest.raises(SetupError, match="trailing space"):
        enc.check(examples_from([question("toy:toy/m")])[0])


def test_long_answer_is_cut_keeping_its_start_and_the_prompt_end(tiny_encoder: PromptEncoder) -> None:
    tok = tiny_encoder.tokenizer
    ex = TrainingExample("toy:toy/l", "toy", K.FINAL, "Q?", "START " + "word & " * 300 + "END", 1.0, -1)
    empty = len(tiny_encoder.ids(ex.messages(answer="")))
    short = PromptEncoder(tok, max_length=empty + 40)
    enc = short.encode(ex)
    assert enc is not None and enc.truncated
    assert len(enc.input_ids) <= empty + 40
    text = tok.decode(enc.input_ids)
    assert text.endswith(ASSISTANT_PREFIX) and "START" in text and "END" not in text
    assert "</answer>" in text  # the answer block is closed: only the answer text was cut
    assert PromptEncoder(tok, max_length=empty - 1).encode(ex) is None  # even an empty answer does not fit
    fits = PromptEncoder(tok, max_length=4096).encode(ex)
    assert fits is not None and not fits.truncated and "END" in tok.decode(fits.input_ids)


# --------------------------------------------------------------------------- loss


def test_left_padding_gives_each_sequence_its_unpadded_logits(tiny_model: Any, tiny_encoder: PromptEncoder) -> None:
    data = [question("toy:toy/a"), question("toy:toy/much-longer-key-here")]
    items = [e for e in (tiny_encoder.encode(x) for x in examples_from(data)) if e is not None]
    with torch.inference_mode():
        batched = last_logits(tiny_model, collate(items, pad_id=0))
        for row, item in enumerate(items):
            alone = last_logits(tiny_model, collate([item], pad_id=0))
            torch.testing.assert_close(batched[row], alone[0], atol=1e-4, rtol=1e-4)


class _FakeLM:
    """Returns fixed logits at the last position and fresh noise everywhere else; records its kwargs."""

    def __init__(self, last: torch.Tensor) -> None:
        self.last = last
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        b, t = kwargs["input_ids"].shape
        keep = kwargs.get("logits_to_keep", 0) or t
        logits = torch.randn(b, keep, self.last.shape[-1])
        logits[:, -1, :] = self.last
        return type("Out", (), {"logits": logits})()


def test_loss_comes_from_the_score_position_only(tiny_encoder: PromptEncoder) -> None:
    items = [e for e in (tiny_encoder.encode(x) for x in examples_from([question("toy:toy/a")])) if e is not None]
    batch = collate(items, pad_id=0)
    vocab = len(tiny_encoder.tokenizer)
    fake = _FakeLM(torch.randn(len(items), vocab))
    digits = torch.tensor(tiny_encoder.digit_ids)
    first = batch_loss(fake, batch, digits)
    again = batch_loss(fake, {**batch, "input_ids": batch["input_ids"].flip(-1)}, digits)  # other tokens, same end
    assert torch.equal(first, again)
    assert all(call["logits_to_keep"] == 1 for call in fake.calls)
    manual = -(batch["target"] * torch.log_softmax(fake.last, -1)[:, digits]).sum(-1).mean()
    torch.testing.assert_close(first, manual)


def test_score_loss_uses_the_full_vocabulary() -> None:
    digits = torch.arange(10)
    target = torch.tensor([soft_target(0.55)])
    logits = torch.zeros(1, 50)
    base = score_loss(logits, target, digits)
    more_elsewhere = logits.clone()
    more_elsewhere[0, 30] = 5.0  # mass on a non-digit token
    assert score_loss(more_elsewhere, target, digits) > base
    on_target = logits.clone()
    on_target[0, 5] = 5.0
    assert score_loss(on_target, target, digits) < base


# --------------------------------------------------------------------------- training end to end (tiny model)


def test_train_lowers_loss_and_writes_a_bound_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = [question(f"toy:toy/{i}", (0.9, 0.9, 0.9)) for i in range(24)]
    path = write_jsonl(tmp_path / "toy.jsonl", data)
    out = tmp_path / "adapter"
    cfg = TrainConfig(max_steps=20, lr=5e-3, batch_size=4, dev_fraction=0.25, device="cpu", max_length=1024)
    report = train_adapter([path], out, model=tiny_model_dir, config=cfg, home=tmp_path)

    assert report.steps == 20 and report.seconds_per_step > 0
    losses = [r["loss"] for r in report.log]
    assert len(losses) == 20
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert report.counts["dev_questions"] > 0
    assert report.dev_after["loss"] < report.dev_before["loss"]
    assert report.dev_after["brier_soft"] < report.dev_before["brier_soft"]
    final = report.dev_after["by_kind"]["final"]
    assert final["auroc"] is None and "both correct and incorrect" in final["notes"]["auroc"]  # single-class labels

    base_name, base_sha = tiny_model_dir.name, weights_sha256(tiny_model_dir)
    manifest = check_binding(out, base_name, base_sha)
    assert manifest.trained and (manifest.rank, manifest.alpha, manifest.target_modules) == (8, 16, LORA_TARGETS)
    assert manifest.extra["data"][0]["sha256"] == sha256_file(path)
    assert manifest.extra["data"][0]["questions"] == 24 and manifest.extra["steps"] == 20
    assert manifest.extra["dev_metrics"]["after"] == json.loads(json.dumps(report.dev_after))
    with pytest.raises(AdapterMismatchError):
        check_binding(out, "SomeOtherModel", base_sha)
    with pytest.raises(AdapterMismatchError):
        check_binding(out, base_name, "0" * 64)
    assert len((out / TRAINING_LOG).read_text().splitlines()) == 20
    peft_cfg = json.loads((out / "adapter_config.json").read_text())
    assert peft_cfg["r"] == 8 and peft_cfg["lora_alpha"] == 16 and set(peft_cfg["target_modules"]) == set(LORA_TARGETS)
    assert not list(tmp_path.glob(".train-*"))  # no temporary folder left behind

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    loaded = PeftModel.from_pretrained(base, str(out)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    enc = PromptEncoder(tok, max_length=1024)
    _, dev_q = split_by_question(read_dataset([path]), 0.25)
    dev_items = [e for e in (enc.encode(x) for x in examples_from(dev_q)) if e is not None]
    preds = predict(loaded, dev_items, enc.digit_ids, pad_id=tok.pad_token_id, batch_size=8, device="cpu")
    mean = sum(p.value for p in preds) / len(preds)
    assert mean == pytest.approx(report.dev_after["mean_prediction"], abs=1e-4)  # the saved adapter is the trained one
    assert mean != pytest.approx(report.dev_before["mean_prediction"], abs=1e-4)


def test_train_config_validates() -> None:
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig(lr=0.0)
    with pytest.raises(ConfigError, match="device"):
        TrainConfig(device="tpu")
    with pytest.raises(ConfigError, match="warmup_ratio"):
        TrainConfig(warmup_ratio=1.5)


def test_encoded_dataclass_is_plain() -> None:
    e = Encoded([1, 2, 3], soft_target(0.5), K.FINAL, 0.5)
    assert collate([e], pad_id=0)["input_ids"].tolist() == [[1, 2, 3]]


# --------------------------------------------------------------------------- the command


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("train")(train)

    @app.command()
    def other() -> None:  # a second command, so Typer keeps `train` as a subcommand
        """Unused."""

    return app


def test_cli_missing_data_file_exits_2_with_a_hint(tmp_path: Path) -> None:
    result = CliRunner().invoke(_cli(), ["train", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "a")])
    assert result.exit_code == 2
    assert "build-data" in " ".join(result.output.split())


def test_cli_refuses_to_overwrite_a_folder_that_is_not_an_adapter(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "toy.jsonl", [question("toy:toy/1")])
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(_cli(), ["train", str(path), "--out", str(out)])
    assert result.exit_code == 2
    assert "not a FineCE adapter folder" in " ".join(result.output.split())
    assert (out / "notes.txt").read_text() == "keep me"


def test_serve_refuses_an_adapter_made_for_another_base_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    from finece_guard.backends.vllm_server import free_port
    from finece_guard.cli import app

    fake_python = tmp_path / "python"  # never run: the binding check comes before the server starts
    fake_python.write_text("#!/bin/sh\nexit 1\n")
    fake_python.chmod(0o755)
    adapter = tmp_path / "foreign"
    adapter.mkdir()
    AdapterManifest("SmolLM2-135M-Instruct", "ab" * 32, trained=True).write(adapter)
    args = ["serve", "--model", str(tiny_model_dir), "--adapter", str(adapter), "--vllm-python", str(fake_python),
            "--port", str(free_port())]  # fmt: skip
    result = CliRunner().invoke(app, args)
    text = " ".join(result.output.split())
    assert result.exit_code == 2
    assert "was made for base model 'SmolLM2-135M-Instruct'" in text and repr(tiny_model_dir.name) in text
