"""Steps out of a plan that is still being written: the planner's compact JSON (`{"steps":[{…},{…}`) is scanned as
it streams, and each step object is decoded the moment its closing brace arrives."""

from __future__ import annotations

import msgspec

from stepwise.reasoning.types import Step

_decode_step = msgspec.json.Decoder(Step).decode


class StepScanner:
    """Feed text deltas; get back the steps completed by each. Tracks only JSON nesting and strings: the text is
    produced under the plan's schema, so it is valid JSON, and a step is an object at depth 2."""

    __slots__ = ("_text", "_depth", "_in_string", "_escaped", "_start", "_pos")

    def __init__(self) -> None:
        self._text = ""
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._start = -1
        self._pos = 0

    def feed(self, delta: str) -> list[Step]:
        self._text += delta
        steps = []
        text = self._text
        for i in range(self._pos, len(text)):
            char = text[i]
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
                if char == "{" and self._depth == 3:  # {"steps":[ {…} — the root, the array, then a step
                    self._start = i
            elif char in "}]":
                if char == "}" and self._depth == 3:
                    steps.append(_decode_step(text[self._start:i + 1]))
                self._depth -= 1
        self._pos = len(text)
        return steps
