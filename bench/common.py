"""Shared helpers of the ``bench/bench_*.py`` scripts: the machine they ran on, the stand-ins
they start, timing, percentiles and the figures table they print.

Every benchmark prints its figures next to a baseline measured in the same run (a ratio),
because absolute numbers from a shared 2-core machine say little on their own. Tests never
assert timings; ``tests/e2e/test_bench_smoke.py`` only checks that each script runs.

Stand-ins are the ones the test suite uses (``tests/fixtures``): Azurite started by its pid,
the local vectorizer server and the Azure AI Search double in background threads of this
process, all on free ports of 127.0.0.1, all stopped when their ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import platform
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

# The offline models carry their weights; nothing may reach for a model hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as `python bench/x.py` from anywhere
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

# --------------------------------------------------------------------------- the machine


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:  # pragma: no cover - not on Linux
        return (float("nan"),) * 3


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not on Linux
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1024 * 1024)
    except OSError:  # pragma: no cover
        pass
    return float("nan")


def _version(package: str) -> str:
    """A package's installed version, without importing it (torch costs seconds)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_description() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "memory_gib": round(_memory_gib(), 1),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "torch": _version("torch"),
        "load_average": load_average(),
    }


def busy_machine(load: Sequence[float] | None = None) -> bool:
    """Whether other work was competing for the CPU (1-minute load at or above half the cores)."""
    load = load or load_average()
    return bool(load[0] >= 0.5 * (os.cpu_count() or 1))


def print_header(title: str, what: str) -> dict[str, Any]:
    """Print the benchmark's title, what it measures, and the machine with its load right now."""
    machine = machine_description()
    one, five, fifteen = machine["load_average"]
    print(f"\n=== {title} ===")
    print(what)
    print(
        f"machine: {machine['cores']} cores, {machine['cpu']}, {machine['memory_gib']} GiB; "
        f"Python {machine['python']}, numpy {machine['numpy']}, torch {machine['torch']}; {machine['date']}"
    )
    note = (
        "  (busy: other work, or the benchmark before this one, shared the CPU; figures are conservative)"
        if busy_machine((one, five, fifteen))
        else ""
    )
    print(f"load average at start: {one:.2f} {five:.2f} {fifteen:.2f}{note}")
    sys.stdout.flush()
    return machine


# --------------------------------------------------------------------------- figures


@dataclass
class Figure:
    """One printed result: ``goal_met`` is None when the figure has no goal."""

    name: str
    value: str
    goal: str = ""
    goal_met: bool | None = None


@dataclass
class Report:
    """The figures of one benchmark, printed as a table, plus notes that qualify them."""

    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, value: str, goal: str = "", goal_met: bool | None = None) -> None:
        self.figures.append(Figure(name, value, goal, goal_met))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def print(self) -> None:
        rows = [
            (f.name, f.value, f.goal, "" if f.goal_met is None else ("met" if f.goal_met else "NOT MET"))
            for f in self.figures
        ]
        headers = ("figure", "value", "goal", "")
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
        print(f"\n{self.title}")
        print("  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip())
        print("  " + "  ".join("-" * w for w in widths))
        for row in rows:
            print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())
        for text in self.notes:
            print(f"  note: {text}")
        load = load_average()
        print(f"  load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        sys.stdout.flush()


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100), linearly interpolated between the nearest samples."""
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=np.float64), p))


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("inf")


class Stopwatch:
    """``with Stopwatch() as sw: ...``; then ``sw.seconds``."""

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.seconds = time.perf_counter() - self.started


def say(text: str) -> None:
    """A progress line (benchmarks take minutes; show where they are)."""
    print(f"  .. {text}")
    sys.stdout.flush()


def quiet_logs() -> None:
    """Keep expected retry warnings (429s are part of what bench 1 measures) out of the
    figures; errors still show."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    for name in ("indexer", "azure", "uvicorn", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


# --------------------------------------------------------------------------- images


def tiny_jpeg(seed: int, size: int = 64) -> bytes:
    """A distinct small photo-like JPEG (noise over a colour plus a shape), so every blob has
    its own bytes and hash; small, so the offline model's decode stays cheap."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=3)
    pixels = np.clip(base + rng.normal(0, 40, size=(size, size, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    x0, y0 = (int(v) for v in rng.integers(0, size // 2, size=2))
    ImageDraw.Draw(image).ellipse(
        (x0, y0, x0 + size // 3, y0 + size // 3), fill=tuple(int(v) for v in rng.integers(0, 256, size=3))
    )
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def upload_blobs(container: Any, blobs: dict[str, bytes], *, workers: int = 8) -> None:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda item: container.upload_blob(item[0], item[1], overwrite=True), blobs.items()))


# --------------------------------------------------------------------------- stand-ins


@contextlib.contextmanager
def azurite() -> Iterator[Any]:
    """Azurite's blob service on a free port with a temporary data folder, stopped by its pid.

    Not ``in_memory=True``: Azurite refuses ``--inMemoryPersistence`` together with the
    ``--location`` that ``start_azurite_blob`` always passes."""
    from standins.azurite import start_azurite_blob

    server = start_azurite_blob()
    try:
        yield server
    finally:
        server.stop()


def load_offline_model(model_version: str) -> Any:
    """Load the offline model now, so no measured request waits seconds for it."""
    from standins.vision.server import default_model_lookup

    return default_model_lookup(model_version)


@dataclass
class RunningVisionServer:
    url: str
    key: str
    requests: Any  # standins.vision.server.RequestLog

    def image_calls(self, status: int | None = None) -> int:
        return sum(
            1
            for r in self.requests.all()
            if r.path.endswith("vectorizeImage") and (status is None or r.status == status)
        )


@contextlib.contextmanager
def vision_server(**options: Any) -> Iterator[RunningVisionServer]:
    """The local vectorizer server (``ServerConfig(**options)`` plus a random key), with the
    real offline models, in a background thread."""
    from standins.vision.server import RequestLog, ServerConfig, default_model_lookup, serve_in_thread

    key = secrets.token_hex(16)
    log = RequestLog()
    config = ServerConfig(keys=[key], **options)
    with serve_in_thread(config, model_lookup=default_model_lookup, request_log=log) as url:
        yield RunningVisionServer(url, key, log)


class AddedLatency:
    """ASGI wrapper that holds every request ``seconds`` before serving it: a network round
    trip to a remote service, which loopback HTTP does not have."""

    def __init__(self, app: Any, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope.get("type") == "http" and self.seconds > 0:
            import asyncio

            await asyncio.sleep(self.seconds)
        await self.app(scope, receive, send)


@dataclass
class RunningSearchDouble:
    endpoint: str
    api_key: str
    service: Any  # standins.search.service.SearchDoubleService
    tally: Any  # an IndexingRecorder, or None

    @property
    def credential(self) -> Any:
        from azure.core.credentials import AzureKeyCredential

        return AzureKeyCredential(self.api_key)

    def backend(self, index_name: str, **options: Any) -> Any:
        from indexer.backends.azure_search import AzureSearchBackend

        return AzureSearchBackend(self.endpoint, index_name, self.credential, **options)


@contextlib.contextmanager
def search_double(*, tally: bool = False, latency_ms: float = 0.0) -> Iterator[RunningSearchDouble]:
    """The Azure AI Search double (admin key required) in a background thread; with
    ``tally`` its indexing requests are counted per document key
    (``tests.indexing_recorder.IndexingRecorder``); with
    ``latency_ms`` every request waits that long first (``AddedLatency``)."""
    from standins.search.service import SearchDoubleConfig, create_app, serve_in_thread
    from tests.indexing_recorder import IndexingRecorder

    key = secrets.token_urlsafe(24)
    app = create_app(SearchDoubleConfig(admin_keys=(key,)))
    counter = IndexingRecorder(app) if tally else None
    served: Any = counter or app
    if latency_ms > 0:
        served = AddedLatency(served, latency_ms / 1000.0)
    with serve_in_thread(app=served) as endpoint:
        yield RunningSearchDouble(endpoint, key, app.state.service, counter)


def fmt_rate(value: float, unit: str = "/s") -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:,.1f}{unit}" if value < 100 else f"{value:,.0f}{unit}"
