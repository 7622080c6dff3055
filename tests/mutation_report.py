"""Print the mutation score of each core module after ``mutmut run`` (``make mutation``).

The score of a module is the share of its mutants that a test killed (including timeouts,
which mean the mutant broke the code). Mutants no test reaches count as survivors: a line
no test runs is a line whose bugs no test would notice. Exits 1 when a module is under the
goal, so the target is usable as a gate.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

GOAL = 0.90
KILLED = {"killed", "timeout"}
LINE = re.compile(r"^\s*(?P<name>[\w.]+)__mutmut_\d+: (?P<status>.+?)\s*$")


def module_of(mutant: str) -> str:
    """``indexer.limits.x_check_text`` -> ``indexer/limits.py``; methods have a class part
    (``indexer.documents.xǁIndexPinǁcheck``), which the module path leaves out."""
    dotted = mutant.split(".x_")[0].split(".xǁ")[0]
    return dotted.replace(".", "/") + ".py"


def main() -> int:
    mutmut = Path(sys.executable).with_name("mutmut")
    listing = subprocess.run([str(mutmut), "results", "--all", "true"], capture_output=True, text=True, check=True)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for line in listing.stdout.splitlines():
        match = LINE.match(line)
        if match:
            counts[module_of(match["name"])][match["status"]] += 1
    if not counts:
        print("no mutants found: run `mutmut run` first (make mutation)", file=sys.stderr)
        return 1
    below = []
    print(f"{'module':<45} {'mutants':>7} {'killed':>7} {'survived':>8} {'no test':>7} {'score':>6}")
    for module in sorted(counts):
        c = counts[module]
        total = sum(c.values())
        killed = sum(c[s] for s in KILLED)
        score = killed / total
        print(f"{module:<45} {total:>7} {killed:>7} {c['survived']:>8} {c['no tests']:>7} {score:>6.0%}")
        if score < GOAL:
            below.append(module)
    print(f"\ngoal: at least {GOAL:.0%} per module; " + (f"below it: {', '.join(below)}" if below else "all met"))
    print("inspect a survivor with: .venv/bin/mutmut show <mutant name>  (names: .venv/bin/mutmut results)")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
