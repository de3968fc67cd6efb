"""Checks that ask a model: self-consistency (sample the expert again, vote) and an LLM judge (a second expert
checks the answer against the question, under a constrained verdict). Both are off by default: they cost calls."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import msgspec

from stepwise.reasoning.types import EXPERT_SYSTEM, Ask, JsonSchema, Message, Step, Verdict

# The verifiers' prompts. They are here, not in reasoning/prompts.py, because verifiers import only reasoning/types.py
# (which holds EXPERT_SYSTEM: self-consistency asks an expert step's question again exactly as the step asked it).
# A short reason: it becomes the retry's feedback and the verdict's row in the trace.
_JUDGE_SYSTEM = (
    "You check answers. Given a question and an answer, reply with JSON: ok is true if the answer is correct and "
    "answers the question, else false; reason says why in a few words."
)
_JUDGE_USER = "Question: {question}\nAnswer: {answer}"


class JudgeVerdict(msgspec.Struct, forbid_unknown_fields=True):
    ok: bool
    reason: str


_JUDGE_SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"},
                                                  "reason": {"type": "string", "maxLength": 160}},
                 "required": ["ok", "reason"], "additionalProperties": False}


def normalize(answer: Any) -> str:
    """Answers compared for voting: case, spaces and punctuation at the ends do not count."""
    return re.sub(r"\s+", " ", str(answer)).strip().strip(".!?\"'").lower()


class SelfConsistency:
    """Asks the step's expert `samples` more times at a higher temperature; the step's answer must be the
    majority's, agreed by more than `threshold` of all answers. The agreement ratio is in the verdict's reason."""

    name = "self_consistency"
    kinds = frozenset({"expert"})

    def __init__(self, samples: int = 3, threshold: float = 0.5, temperature: float = 0.8) -> None:
        self.samples, self.threshold, self.temperature = samples, threshold, temperature

    async def verify(self, step: Step, resolved_input: Any, output: Any, ask: Ask) -> Verdict:
        messages = [Message("system", EXPERT_SYSTEM), Message("user", str(resolved_input))]
        others = await ask(messages, samples=self.samples, temperature=self.temperature, max_tokens=64)
        votes = Counter(normalize(a) for a in [output, *others])
        majority, _ = votes.most_common(1)[0]
        ratio = votes[normalize(output)] / (len(others) + 1)
        reason = f"agreement {ratio:.2f} ({votes[normalize(output)]} of {len(others) + 1}); majority {majority!r}"
        agrees = normalize(output) == majority and ratio > self.threshold
        return Verdict(self.name, "pass" if agrees else "retry", reason)


class Judge:
    """An expert (`target`; by default the step's own) checks the answer against the question."""

    name = "llm_judge"
    kinds = frozenset({"expert"})

    def __init__(self, target: str | None = None) -> None:
        self.target = target

    async def verify(self, step: Step, resolved_input: Any, output: Any, ask: Ask) -> Verdict:
        messages = [Message("system", _JUDGE_SYSTEM),
                    Message("user", _JUDGE_USER.format(question=resolved_input, answer=output))]
        (reply,) = await ask(messages, target=self.target, constraint=JsonSchema("verdict", _JUDGE_SCHEMA),
                             max_tokens=80)
        try:
            verdict = msgspec.json.decode(reply, type=JudgeVerdict)
        except msgspec.DecodeError as exc:
            return Verdict(self.name, "fail", f"the judge's reply broke its schema: {exc}")
        return Verdict(self.name, "pass" if verdict.ok else "retry", verdict.reason)
