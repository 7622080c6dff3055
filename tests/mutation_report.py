"""Print the mutation score of each core module after ``mutmut run`` (``make mutation``).

The score of a module is the share of its mutants that a test killed (including timeouts,
which mean the mutant broke the code). Mutants no test reaches count as survivors: a line
no test runs is a line whose bugs no test would notice. Each module has its own goal
(``GOALS``): the small pure modules 90%, the orchestration modules 85%, since more of their
mutants change nothing a test can see (a thread's name, a cancel made twice). Exits 1 when a
module is under its goal, has no goal, or has a goal but no mutants, so the target is usable
as a gate.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

# Each module mutmut mutates (pyproject.toml [tool.mutmut] only_mutate) and its goal.
GOALS = {
    "indexer/documents.py": 0.90,
    "indexer/keys.py": 0.90,
    "indexer/filters.py": 0.90,
    "indexer/limits.py": 0.90,
    "indexer/ratelimit.py": 0.90,
    "indexer/backends/schema_rules.py": 0.90,
    "indexer/backends/azure_search/odata.py": 0.90,
    # where a silent bug loses data or breaks a contract: events converge, a bulk run writes
    # and reports every item, a Vision call goes to a free resource, the skill answers every record
    "indexer/indexing/events.py": 0.85,
    "indexer/indexing/bulk.py": 0.85,
    "indexer/vectorizers/vision/dispatch.py": 0.85,
    "indexer/entrypoints/vectorize.py": 0.85,
    # what a deployment is sized by and what index ensure-index creates: a silent bug here plans
    # too small a service or compresses an index otherwise than asked
    "indexer/vector_compression.py": 0.90,
    "indexer/planning/sizing.py": 0.90,
    "indexer/planning/plan.py": 0.85,
}
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
    header = f"{'module':<45} {'mutants':>7} {'killed':>7} {'survived':>8} {'no test':>7} {'score':>6} {'goal':>5}"
    print(header)
    for module in sorted(counts):
        c = counts[module]
        total = sum(c.values())
        killed = sum(c[s] for s in KILLED)
        score = killed / total
        goal = GOALS.get(module)
        shown = "none" if goal is None else f"{goal:.0%}"
        print(f"{module:<45} {total:>7} {killed:>7} {c['survived']:>8} {c['no tests']:>7} {score:>6.1%} {shown:>5}")
        if goal is None or score < goal:
            below.append(module)
    # A module with a goal but no mutants is no longer mutated (only_mutate lost it).
    below += [f"{module} (no mutants)" for module in sorted(set(GOALS) - set(counts))]
    verdict = f"not met by: {', '.join(below)}" if below else "all met"
    print(f"\ngoals: each module's own (GOALS in {Path(__file__).name}); {verdict}")
    print("inspect a survivor with: .venv/bin/mutmut show <mutant name>  (names: .venv/bin/mutmut results)")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
