"""Importable by programs in the python tool's sandbox (`from puzzle import make`): an exhaustive search for the
arithmetic puzzles a word-problem model otherwise guesses at (make a target from given numbers). Standard library
only; it runs inside the sandbox, under the program's limits."""

from fractions import Fraction
from itertools import combinations


def make(target, numbers, ops="+-*/"):
    """An expression that uses each of `numbers` exactly once, the operators in `ops` and parentheses, and equals
    `target` exactly (fractions, no rounding); None when there is none."""
    goal = Fraction(target)
    failed = set()

    def search(items):
        if len(items) == 1:
            return items[0][1] if items[0][0] == goal else None
        key = tuple(sorted(value for value, _ in items))
        if key in failed:
            return None
        for i, j in combinations(range(len(items)), 2):
            (a, x), (b, y) = items[i], items[j]
            rest = [items[k] for k in range(len(items)) if k not in (i, j)]
            options = []
            if "+" in ops:
                options.append((a + b, f"({x} + {y})"))
            if "*" in ops:
                options.append((a * b, f"({x} * {y})"))
            if "-" in ops:
                options += [(a - b, f"({x} - {y})"), (b - a, f"({y} - {x})")]
            if "/" in ops:
                options += [(a / b, f"({x} / {y})")] if b else []
                options += [(b / a, f"({y} / {x})")] if a else []
            for value, text in options:
                found = search([*rest, (value, text)])
                if found is not None:
                    return found
        failed.add(key)
        return None

    found = search([(Fraction(n), str(n)) for n in numbers])
    return found[1:-1] if found and found.startswith("(") and len(numbers) > 1 else found
