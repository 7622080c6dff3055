"""Benchmark 8: the CLI's own backfill against rate-limited Vision resources, one and two.

What a user runs, end to end: ``imgsearch backfill --json`` in a process of its own with the
default settings, against ``imgsearch serve-vision --rate-limit R`` processes (one per Vision
resource; ``VISION_ENDPOINT`` lists them), Azurite and the Azure AI Search double. Each
scenario backfills into a fresh index and a fresh data folder. The Vision stand-ins count
requests either as Azure's gateway does (fixed one-second windows: ``standins/FIDELITY.md``
V7a) or with no burst at all (a token bucket of one: no two requests closer than 1/R), with
0 ms or 100 ms added to every call.

Printed, per scenario:
- achieved Vision rate / (resources x R), the goal >= 0.9: blobs indexed per second of the
  backfill (the CLI's own ``elapsed_seconds``: listing, every call, the last upsert and the
  wait for visibility included);
- lost blobs (not in the index), duplicated documents (keys the search double accepted more
  than one upload for, counted on the wire), the CLI's exit code (must be 0 with nothing left
  undone), and the 429 answers the stand-ins gave;
- the two-resource rate over the one-resource rate of the same run (the goal: about 2).

The offline model answers every call on this machine's CPU, beside the CLI, Azurite and the
search double, so the machine must be able to run the whole pipeline faster than the rates
asked for, or the figure measures the CPU, not the pacing: the pipeline's capacity is measured
first, with the same command against unlimited stand-ins (one, then two), and R is lowered
(and the reason printed) when (resources x R) is more than 80% of it. The stand-ins' capacity
alone is printed too; it is higher, since it leaves out the CLI's own work.

Run: ``python bench/bench_backfill_cli.py`` (about 12 minutes on 2 cores, where R comes out
near 8) or ``--quick`` (a smoke run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    REPO_ROOT,
    Report,
    azurite,
    print_header,
    quiet_logs,
    say,
    search_double,
    tiny_jpeg,
    upload_blobs,
)

HEADROOM = 0.8  # the share of the measured capacity the rate limits may ask for
MEASURED_PREFIX = "measured/"  # the scenarios' blobs: a/ for one resource, a/ and b/ for two
CAPACITY_PREFIX = "capacity/"  # the capacity runs' blobs, apart from the measured ones
MODEL = "2023-04-15"  # production's setting; the stand-in answers with its offline model


@dataclass(frozen=True)
class Scenario:
    resources: int
    counting: str  # "azure" (fixed windows) or "no-burst" (a token bucket of one)
    latency_ms: float

    @property
    def label(self) -> str:
        return f"{self.resources} resource{'s' if self.resources > 1 else ''}, {self.counting}, {self.latency_ms:g} ms"


SCENARIOS = [
    Scenario(1, "azure", 0),
    Scenario(1, "azure", 100),
    Scenario(1, "no-burst", 0),
    Scenario(1, "no-burst", 100),
    Scenario(2, "azure", 0),
    Scenario(2, "azure", 100),
    Scenario(2, "no-burst", 0),
]
QUICK_SCENARIOS = [Scenario(1, "azure", 0), Scenario(1, "no-burst", 0), Scenario(2, "azure", 0)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few blobs, three scenarios")
    parser.add_argument("--blobs", type=int, default=500, help="blobs per resource and scenario (default 500)")
    parser.add_argument("--rate", type=float, default=20.0, help="R per resource (default 20, Azure S1)")
    parser.add_argument(
        "--capacity-blobs", type=int, default=240, help="blobs of the pipeline's capacity runs (default 240)"
    )
    parser.add_argument("--force-rate", action="store_true", help="keep R even above the measured capacity")
    args = parser.parse_args(argv)
    if args.quick:
        args.blobs = min(args.blobs, 30)
        args.capacity_blobs = min(args.capacity_blobs, 30)
    if args.blobs < 1 or args.capacity_blobs < 1 or args.rate <= 0:
        parser.error("--blobs and --capacity-blobs must be at least 1 and --rate positive")
    return args


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class VisionProcess:
    """``imgsearch serve-vision`` in a process of its own, stopped by its pid."""

    def __init__(self, work: Path, *options: str) -> None:
        self.port = free_port()
        self.key = secrets.token_hex(12)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / f"vision-{self.port}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "indexer",
                    "serve-vision",
                    "--port",
                    str(self.port),
                    "--key",
                    self.key,
                    *options,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the model answers (it loads on the first request)."""
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve-vision exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                # Text and image: both models load on their first request.
                params = {"api-version": "2024-02-01", "model-version": MODEL}
                base = f"{self.url}/computervision/retrieval:"
                key = {"Ocp-Apim-Subscription-Key": self.key}
                text = requests.post(
                    base + "vectorizeText", params=params, json={"text": "warm up"}, headers=key, timeout=60
                )
                image = requests.post(
                    base + "vectorizeImage",
                    params=params,
                    data=tiny_jpeg(7),
                    headers={"Content-Type": "application/octet-stream", **key},
                    timeout=60,
                )
                if {text.status_code, image.status_code} <= {200, 429}:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"serve-vision on {self.url} did not answer in {timeout:g} s")

    def image_answers(self, status: int) -> int:
        """vectorizeImage answers with ``status``, from the stand-in's access log."""
        text = self.log_path.read_text(errors="replace")
        return len(re.findall(rf'vectorizeImage[^"]*" {status} ', text))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_resources(work: Path, count: int, *options: str) -> list[VisionProcess]:
    servers = [VisionProcess(work, *options, "--log-level", "info") for _ in range(count)]
    try:
        for server in servers:
            server.wait_ready()
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def capacity(work: Path, count: int, images: list[bytes], seconds: float) -> float:
    """Image calls a second ``count`` unlimited stand-ins answer together, 8 callers each
    (the stand-ins alone: no blob reads, no index writes)."""
    from azure.core.credentials import AzureKeyCredential

    from indexer.vectorizers.vision import VisionClient

    servers = start_resources(work, count)
    try:
        clients = [VisionClient(s.url, AzureKeyCredential(s.key), model_version=MODEL) for s in servers]
        done = [0]
        lock = threading.Lock()
        stop = time.monotonic() + seconds

        def work_on(client, offset: int) -> None:
            position = offset
            while time.monotonic() < stop:
                client.vectorize_image(images[position % len(images)])
                position += 8
                with lock:
                    done[0] += 1

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8 * count) as pool:
            list(pool.map(lambda job: work_on(*job), [(c, i) for c in clients for i in range(8)]))
        rate = done[0] / (time.monotonic() - started)
        for client in clients:
            client.close()
        return rate
    finally:
        for server in servers:
            server.stop()


def backfill_env(storage, container, search, servers, index_name: str, data_dir: Path, rate: float) -> dict[str, str]:
    """The environment of one ``imgsearch backfill``: what a user sets, nothing more."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "IMAGES_STORAGE": storage.connection_string,
        "IMAGES_CONTAINER": container.container_name,
        "VISION_ENDPOINT": ",".join(s.url for s in servers),
        "VISION_KEY": ",".join(s.key for s in servers),
        "VISION_MODEL_VERSION": MODEL,
        "SEARCH_ENDPOINT": search.endpoint,
        "SEARCH_KEY": search.api_key,
        "SEARCH_INDEX_NAME": index_name,
        "IMGSEARCH_DATA_DIR": str(data_dir),
    }
    for name in ("VISION_REQUESTS_PER_SECOND", "VISION_CONCURRENCY", "VISION_MAX_RETRIES"):
        env.pop(name, None)
    if rate != 20.0:
        env["VISION_REQUESTS_PER_SECOND"] = f"{rate:g}"
    return env


def pipeline_capacity(work: Path, count: int, storage, container, search, number: int) -> float:
    """Blobs a second the CLI's backfill indexes through ``count`` unlimited stand-ins (the
    pace set far above what they can answer): the whole pipeline on this machine."""
    servers = start_resources(work, count)
    try:
        env = backfill_env(storage, container, search, servers, f"capacity-{number}", work / f"cap-{number}", 1000.0)
        code, summary, stderr = run_backfill(env, CAPACITY_PREFIX)
    finally:
        for server in servers:
            server.stop()
    if code != 0 or not summary.get("elapsed_seconds"):
        raise RuntimeError(f"the capacity run through {count} stand-in(s) failed (exit {code}): {stderr}")
    return float(summary["indexed"]) / float(summary["elapsed_seconds"])


def run_backfill(env: dict[str, str], prefix: str) -> tuple[int, dict, str]:
    command = [sys.executable, "-m", "indexer", "backfill", "--json", "--prefix", prefix]
    result = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    try:
        summary = json.loads(result.stdout)
    except ValueError:
        summary = {}
    return result.returncode, summary, result.stderr[-1500:]


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_logs()
    scenarios = QUICK_SCENARIOS if args.quick else SCENARIOS
    print_header(
        "Benchmark 8: the CLI's own backfill against rate-limited Vision resources",
        f"`imgsearch backfill` (default settings) -> `imgsearch serve-vision --rate-limit R` processes "
        f"(1 or 2 resources) -> search double; {args.blobs} blobs per resource; {len(scenarios)} scenarios",
    )
    from azure.storage.blob import BlobServiceClient

    from indexer.indexing.pipeline import content_hash
    from indexer.keys import blob_identity, document_key

    report = Report("Benchmark 8 figures")
    failures: list[str] = []
    images = {
        f"{MEASURED_PREFIX}{p}/img-{i:05d}.jpg": tiny_jpeg(i + (0 if p == "a" else 100_000))
        for p in "ab"
        for i in range(args.blobs)
    }
    calibration = {f"{CAPACITY_PREFIX}img-{i:05d}.jpg": tiny_jpeg(200_000 + i) for i in range(args.capacity_blobs)}
    with azurite() as storage, search_double(tally=True) as search, tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        service = BlobServiceClient.from_connection_string(storage.connection_string)
        container = service.create_container("backfill-cli")
        upload_blobs(container, {**images, **calibration})
        say(
            f"uploaded {len(images)} JPEGs ({args.blobs} under {MEASURED_PREFIX}a/ and {MEASURED_PREFIX}b/) and "
            f"{len(calibration)} under {CAPACITY_PREFIX}"
        )

        sample = list(images.values())[:64]
        seconds = 3.0 if args.quick else 6.0
        one = capacity(work, 1, sample, seconds)
        two = capacity(work, 2, sample, seconds)
        say(f"stand-in capacity, unlimited: one {one:.1f} calls/s, two together {two:.1f} calls/s")
        report.add("stand-ins' capacity alone, unlimited (one / two together)", f"{one:.1f} / {two:.1f} calls/s")
        whole_one = pipeline_capacity(work, 1, storage, container, search, 1)
        whole_two = pipeline_capacity(work, 2, storage, container, search, 2)
        say(f"pipeline capacity (the CLI's backfill, unlimited): one {whole_one:.1f}/s, two {whole_two:.1f}/s")
        report.add(
            "pipeline capacity, unlimited (backfill through one / two stand-ins)",
            f"{whole_one:.1f} / {whole_two:.1f} blobs/s",
        )
        rates = {}
        for resources, measured in ((1, whole_one), (2, whole_two)):
            fits = math.floor(HEADROOM * measured / resources)
            rate = args.rate if args.force_rate or args.rate <= fits else float(max(1, fits))
            if rate != args.rate:
                report.note(
                    f"{resources} resource(s): the whole pipeline indexes {measured:.1f} blobs/s here, so R was "
                    f"lowered from {args.rate:g} to {rate:g} per resource ({HEADROOM:.0%} of capacity; --force-rate "
                    f"keeps it); VISION_REQUESTS_PER_SECOND is set to the same R, as for a tier of that rate."
                )
            rates[resources] = rate
        # One R for both, so the two-resource run is comparable with the one-resource run.
        rates[1] = rates[2] = min(rates.values())

        achieved: dict[Scenario, float] = {}
        for number, scenario in enumerate(scenarios):
            rate = rates[scenario.resources]
            options = ["--rate-limit", f"{rate:g}", "--latency-ms", f"{scenario.latency_ms:g}"]
            if scenario.counting == "no-burst":
                options += ["--rate-limit-burst", "1"]
            servers = start_resources(work, scenario.resources, *options)
            prefix = f"{MEASURED_PREFIX}a/" if scenario.resources == 1 else MEASURED_PREFIX
            index_name = f"cli-{number}"
            env = backfill_env(storage, container, search, servers, index_name, work / f"data-{number}", rate)
            say(f"{scenario.label}: backfilling {args.blobs * scenario.resources} blobs at R={rate:g}/s per resource")
            try:
                code, summary, stderr = run_backfill(env, prefix)
                refused = sum(s.image_answers(429) for s in servers)
            finally:
                for server in servers:
                    server.stop()
            wanted = {
                document_key(blob_identity(container.get_blob_client(name).url)): content_hash(data)
                for name, data in images.items()
                if name.startswith(prefix)
            }
            if code != 0:
                say(f"  backfill exited {code}: {stderr}")
            backend = search.backend(index_name)
            try:
                stored = backend.keys_with_hashes()
            except Exception:  # noqa: BLE001 - the run failed before creating its index: all lost
                stored = {}
            backend.close()
            lost = len(set(wanted) - set(stored))
            wrong = sum(1 for k in set(wanted) & set(stored) if stored[k] != wanted[k])
            uploads = search.tally.uploads_per_key(index_name)
            duplicated = sum(1 for count in uploads.values() if count > 1)
            elapsed = float(summary.get("elapsed_seconds") or 0.0)
            indexed = int(summary.get("indexed") or 0)
            rate_achieved = indexed / elapsed if elapsed else 0.0
            share = rate_achieved / (scenario.resources * rate)
            achieved[scenario] = rate_achieved
            ok = share >= 0.9 and lost == 0 and duplicated == 0 and wrong == 0 and code == 0
            report.add(
                f"{scenario.label}: achieved / ({scenario.resources} x R)",
                f"{share:.3f} ({rate_achieved:.1f}/s of {scenario.resources * rate:g}/s, {elapsed:.1f} s)",
                ">= 0.9",
                share >= 0.9,
            )
            report.add(
                f"{scenario.label}: lost / duplicated / wrong hash / exit code",
                f"{lost} / {duplicated} / {wrong} / {code}",
                "0 / 0 / 0 / 0",
                lost == 0 and duplicated == 0 and wrong == 0 and code == 0,
            )
            report.add(f"{scenario.label}: 429 answers", str(refused))
            say(f"  -> {share:.3f} of {scenario.resources} x R, lost {lost}, duplicated {duplicated}, exit {code}")
            if not ok:
                failures.append(scenario.label)
        for counting, latency in {(s.counting, s.latency_ms) for s in scenarios if s.resources == 2}:
            single, double = Scenario(1, counting, latency), Scenario(2, counting, latency)
            if achieved.get(single) and achieved.get(double):
                report.add(
                    f"two resources over one ({counting}, {latency:g} ms)",
                    f"{achieved[double] / achieved[single]:.2f}x",
                    "about 2x",
                )
    report.print()
    if failures:
        print(f"  goals not met in: {', '.join(failures)}")
    # Correctness (nothing lost, duplicated or left undone) fails the script; rates are figures.
    broken = [f for f in report.figures if "lost" in f.name and f.goal_met is False]
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
