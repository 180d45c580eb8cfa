"""Does the default generator know multiple-choice answers it cannot produce? Five readings of one model.

Lever 6 of issue 11 found the generator near chance on the multiple-choice tasks (ARC-Easy 0.08-0.23,
SciQ-MC 0.20-0.36 greedy over five instructions, ``benchmarks/results/choice_prompt_*``), while
ENVIRONMENT.md lists SmolLM2-135M at ARC-Easy 39% and SciQ-MC 46%. This measures, on the same dev
questions and in-process (transformers, fp32, no server), what each number is (five readings):

- ``letter``: the prompt exactly as the generator sees it (chat template, lettered options, the task
  instruction), the assistant turn begun with "Answer: ", the option letter with the highest logit
  (what the ``--commit-choices`` stage picks when the answer has no reasoning before it);
- ``option-text``: lm-eval style, "Question: <q>\\nAnswer:" with no options shown, the option whose text
  has the highest summed log-probability as the continuation (``acc``) and per token (``acc_norm``);
- ``option-text-chat``: the same continuation scored as the assistant turn of the chat template with the
  bare question as the user turn;
- ``option-text-greedy``: that assistant turn decoded greedily under a choice constraint over the option
  texts (at each step the best token that keeps some option possible; what a served vLLM
  ``structured_outputs`` choice request returns greedily), so a generation, not a ranking.

For each it reports accuracy and the share of the most-picked option position (a position bias, not
knowledge, when far above 1/options).

    .venv/bin/python -m benchmarks.choice_likelihood --limit 75 --label dev-2026-12-06
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.common import finish, stamp
from finece_guard.data.loaders import load_task
from finece_guard.data.records import LETTERS, QARecord

#: (context, continuation) -> (summed log-probability of the continuation, its token count)
ContinuationScore = Callable[[str, str], tuple[float, int]]
#: (context, candidate single tokens) -> one logit per candidate
NextTokenScore = Callable[[str, Sequence[str]], list[float]]
#: (context, option texts) -> index of the option greedy decoding under a choice constraint produces
ConstrainedGreedy = Callable[[str, Sequence[str]], int]

TASKS = ("arc_easy", "sciq_mc", "arc_challenge", "csqa")
READINGS = ("letter", "option-text", "option-text-norm", "option-text-chat", "option-text-greedy")


@dataclass(frozen=True)
class Readings:
    """The option index each reading picks for one question."""

    letter: int
    option_text: int
    option_text_norm: int
    option_text_chat: int
    option_text_greedy: int

    def as_dict(self) -> dict[str, int]:
        picks = (self.letter, self.option_text, self.option_text_norm, self.option_text_chat, self.option_text_greedy)
        return dict(zip(READINGS, picks, strict=True))


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def plain_context(record: QARecord) -> str:
    """The lm-eval style context: the question alone, no options, no instruction."""
    return f"Question: {record.question}\nAnswer:"


def read_question(
    record: QARecord,
    *,
    next_token: NextTokenScore,
    continuation: ContinuationScore,
    greedy: ConstrainedGreedy,
    chat: Callable[[str], str],
) -> Readings:
    """The three readings of ``record``; ``chat(user)`` renders a user turn and opens the assistant turn."""
    letters = list(LETTERS[: len(record.choices)])
    letter = _argmax(next_token(chat(record.prompt()) + "Answer: ", letters))
    plain = [continuation(plain_context(record), " " + text) for text in record.choices]
    bare_turn = chat(record.question)
    chatted = [continuation(bare_turn, text) for text in record.choices]
    return Readings(
        letter=letter,
        option_text=_argmax([total for total, _ in plain]),
        option_text_norm=_argmax([total / max(count, 1) for total, count in plain]),
        option_text_chat=_argmax([total for total, _ in chatted]),
        option_text_greedy=greedy(bare_turn, record.choices),
    )


def summarize(records: Sequence[QARecord], readings: Sequence[Readings]) -> dict[str, dict[str, Any]]:
    """Per reading: n, accuracy, and the share of the most-picked option position."""
    out: dict[str, dict[str, Any]] = {}
    gold = [record.gold_index for record in records]
    for name in READINGS:
        picks = [r.as_dict()[name] for r in readings]
        top, top_count = Counter(picks).most_common(1)[0] if picks else (0, 0)
        out[name] = {
            "n": len(picks),
            "accuracy": sum(p == g for p, g in zip(picks, gold, strict=True)) / len(picks) if picks else float("nan"),
            "top_position": LETTERS[top],
            "top_position_share": top_count / len(picks) if picks else float("nan"),
        }
    return out


def constrained_greedy(
    next_logprobs: Callable[[list[int]], Sequence[float]], head: list[int], options: Sequence[list[int]]
) -> int:
    """Index of the option greedy decoding produces when each step may only keep some option possible.

    ``options`` are token ids ending with the end-of-turn token, so an option that is a prefix of another
    competes with it through that token. Once one option is left the constraint forces the rest of it.
    """
    alive = list(range(len(options)))
    step = 0
    while len(alive) > 1 and step < len(options[alive[0]]):
        lp = next_logprobs(head + options[alive[0]][:step])
        best = max({options[i][step] for i in alive if step < len(options[i])}, key=lambda t: lp[t])
        alive = [i for i in alive if step < len(options[i]) and options[i][step] == best]
        step += 1
    return alive[0]


def _model_scores(
    model_dir: str, threads: int
) -> tuple[NextTokenScore, ContinuationScore, ConstrainedGreedy, Callable[[str], str]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()

    def logprobs(ids: list[int]) -> Any:
        with torch.no_grad():
            return torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)

    def next_token(context: str, candidates: Sequence[str]) -> list[float]:
        lp = logprobs(tok(context, add_special_tokens=False).input_ids)[-1]
        return [float(lp[tok.encode(c, add_special_tokens=False)[0]]) for c in candidates]

    def continuation(context: str, text: str) -> tuple[float, int]:
        head = tok(context, add_special_tokens=False).input_ids
        tail = tok(text, add_special_tokens=False).input_ids
        lp = logprobs(head + tail)
        return float(sum(lp[len(head) - 1 + i, t] for i, t in enumerate(tail))), len(tail)

    def greedy(context: str, texts: Sequence[str]) -> int:
        end = [int(tok.convert_tokens_to_ids("<|im_end|>"))]
        options = [tok(text, add_special_tokens=False).input_ids + end for text in texts]
        head = tok(context, add_special_tokens=False).input_ids
        return constrained_greedy(lambda ids: logprobs(ids)[-1], head, options)

    def chat(user: str) -> str:
        turn = [{"role": "user", "content": user}]
        return str(tok.apply_chat_template(turn, tokenize=False, add_generation_prompt=True))

    return next_token, continuation, greedy, chat


def main(argv: Sequence[str] | None = None) -> None:
    from finece_guard.backends.model_store import ensure_default_model
    from finece_guard.config import load_settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--partition", default="dev")
    ap.add_argument("--limit", type=int, default=75)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 leaves a core to a job beside it)")
    ap.add_argument("--label", required=True)
    args = ap.parse_args(argv)
    model_dir = ensure_default_model(load_settings().home)
    next_token, continuation, greedy, chat = _model_scores(str(model_dir), args.threads)
    tasks: dict[str, Any] = {}
    for task in args.tasks.split(","):
        records = load_task(task, partition=args.partition, limit=args.limit)
        readings = [read_question(r, next_token=next_token, continuation=continuation, greedy=greedy, chat=chat)
                    for r in records]  # fmt: skip
        tasks[task] = summarize(records, readings)
        print(task, {k: round(v["accuracy"], 3) for k, v in tasks[task].items()}, flush=True)
    result = {**stamp(), "partition": args.partition, "limit": args.limit, "model": str(model_dir), "tasks": tasks}
    md = [f"# Multiple-choice knowledge vs generation, five readings of the default generator ({args.label})", "",
          f"{result['date']}, {result['machine']}; {args.partition} partition, first {args.limit} questions per task, "
          "transformers fp32 in-process. Readings: see the module docstring of `benchmarks/choice_likelihood.py`.", "",
          "| task | reading | n | accuracy | most-picked position (share) |", "|---|---|---|---|---|"]  # fmt: skip
    for task, rows in tasks.items():
        for name, row in rows.items():
            md.append(f"| {task} | {name} | {row['n']} | {row['accuracy']:.3f} | "
                      f"{row['top_position']} ({row['top_position_share']:.0%}) |")  # fmt: skip
    finish(f"choice_likelihood_{args.label}", result, md)


if __name__ == "__main__":
    main()
