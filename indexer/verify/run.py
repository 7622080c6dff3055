"""The stages of ``imgsearch verify`` (see ``indexer.verify``), their clients, the probe, and its
clean-up whatever happens; ``indexer.verify.diagnosis`` names the service a failure is blamed on.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from indexer.errors import ConfigurationError, ServiceError, describe
from indexer.filters import Condition
from indexer.index_setup import indexer_name
from indexer.keys import blob_identity, document_key
from indexer.redact import redact_urls
from indexer.services import blob_service_client, build_backend, build_pull, close_quietly
from indexer.settings import Settings
from indexer.verify.diagnosis import (
    Failure,
    StageFailed,
    diagnose,
    function_url,
    services_for,
    what_was_seen,
)

PROBE_PREFIX = "imgsearch-verify/"
DEFAULT_SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "cat.jpg"
DEFAULT_QUERY = "a cat"
# Push mode shows an upload in seconds; an indexer run reads the whole container, so it gets
# the same ten minutes as `imgsearch indexer run`.
DEFAULT_STAGE_TIMEOUT = 60.0
DEFAULT_INDEXER_TIMEOUT = 600.0
# The longest one HTTP call may take inside a stage (the stage's time left caps it too).
CALL_TIMEOUT = 30.0
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif"}


@dataclass
class VerifyOptions:
    """What to upload and how long each stage may take."""

    sample: Path = DEFAULT_SAMPLE
    query: str = DEFAULT_QUERY
    stage_timeout: float = DEFAULT_STAGE_TIMEOUT
    indexer_timeout: float = DEFAULT_INDEXER_TIMEOUT
    poll_interval: float = 1.0


@dataclass
class StageResult:
    name: str
    seconds: float
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.name, "seconds": round(self.seconds, 2), "ok": self.ok, "detail": self.detail}


@dataclass
class VerifyReport:
    mode: str
    container: str
    probe: str
    stages: list[StageResult] = field(default_factory=list)
    failure: Failure | None = None
    cleanup: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def exit_code(self) -> int:
        return 0 if self.failure is None else self.failure.exit_code

    def to_dict(self) -> dict[str, Any]:
        failure = None
        if self.failure is not None:
            failure = {**vars(self.failure), "summary": str(self.failure)}
        return {
            "ok": self.ok,
            "mode": self.mode,
            "container": self.container,
            "probe": self.probe,
            "stages": [s.to_dict() for s in self.stages],
            "failure": failure,
            "cleanup": self.cleanup,
        }


# --------------------------------------------------------------------------- the run


def verify(
    settings: Settings,
    options: VerifyOptions | None = None,
    *,
    on_stage: Callable[[StageResult], None] = lambda stage: None,
) -> VerifyReport:
    """Run every stage against ``settings`` (see the module doc); never raises for a stage
    that fails: the report says which and why. Raises ``ConfigurationError`` before anything
    is created when the settings cannot name every service."""
    options = options or VerifyOptions()
    check_settings(settings, options)
    run = _Run(settings, options, on_stage)
    try:
        run.all_stages()
    finally:
        run.clean_up()
    return run.report


def check_settings(settings: Settings, options: VerifyOptions) -> None:
    """Raise ``ConfigurationError`` naming what is missing for a verification, before it starts."""
    if settings.uses_numpy_index:
        raise ConfigurationError("verify proves a deployment: set SEARCH_ENDPOINT to its Azure AI Search service")
    function_url(settings)
    if not options.sample.is_file():
        raise ConfigurationError(f"the probe image {options.sample} does not exist; give one with --image")


class _Run:
    """One verification: its clients, its probe, its stages, and what it must clean up."""

    def __init__(self, settings: Settings, options: VerifyOptions, on_stage: Callable[[StageResult], None]) -> None:
        self.settings, self.options, self.on_stage = settings, options, on_stage
        self.pull_mode = settings.ingestion_mode == "pull"
        self.function = function_url(settings)
        blob_service = blob_service_client(settings)
        self.container = blob_service.get_container_client(settings.images_container)
        self.blob_name = f"{PROBE_PREFIX}{uuid.uuid4().hex[:12]}{options.sample.suffix.lower()}"
        self.blob = self.container.get_blob_client(self.blob_name)
        self.key = document_key(blob_identity(self.blob.url))
        self.backend = build_backend(settings)
        self.pull = build_pull(settings) if self.pull_mode else None
        self.services = services_for(settings, blob_service.url.rstrip("/"))
        self.http = requests.Session()
        self.uploaded = False  # the probe's blob may exist
        self.indexable = False  # the probe's document may exist
        mode = "pull" if self.pull_mode else "push"
        self.report = VerifyReport(mode, settings.images_container, self.blob_name)

    def all_stages(self) -> None:
        stages: list[tuple[str, Callable[[], str]]] = [("upload", self.upload)]
        if self.pull_mode:
            stages.append(("indexer", self.run_indexer_until_indexed))
        stages += [("searchable", self.searchable), ("vectorizer", self.found_by_vectorizer)]
        stages += [("delete", self.delete), ("gone", self.gone)]
        for name, stage in stages:
            if not self.stage(name, stage):
                return

    def stage(self, name: str, work: Callable[[], str]) -> bool:
        started = time.monotonic()
        try:
            detail = work()
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is reported, a bug with its type
            failure = diagnose(name, self.services, exc)
            self.report.failure = failure
            result = StageResult(name, time.monotonic() - started, False, f"{failure.service} {failure.message}")
        else:
            result = StageResult(name, time.monotonic() - started, True, detail)
        self.report.stages.append(result)
        self.on_stage(result)
        return result.ok

    # --- the stages

    def upload(self) -> str:
        from azure.storage.blob import ContentSettings

        data = self.options.sample.read_bytes()
        content_type = CONTENT_TYPES.get(self.options.sample.suffix.lower(), "application/octet-stream")
        self.uploaded = True  # before the call: an upload cut off may still have landed
        try:
            self.blob.upload_blob(data, overwrite=False, content_settings=ContentSettings(content_type=content_type))
        except Exception as exc:  # noqa: BLE001 - reported with the service that gave it
            raise StageFailed(what_was_seen(exc), service="storage", cause=exc) from exc
        self.indexable = True
        return f"{self.options.sample.name} ({len(data)} bytes) -> {self.container.container_name}/{self.blob_name}"

    def run_indexer_until_indexed(self) -> str:
        assert self.pull is not None
        name = indexer_name(self.settings)
        try:
            run = self.pull.run(name, wait=True, timeout=self.options.indexer_timeout)
        except ServiceError as exc:
            raise StageFailed(what_was_seen(exc), service="search", cause=exc) from exc
        mine = [e for e in run.errors if self.blob_name in e.item]
        if mine or run.status == "error":
            why = mine[0].message if mine else (run.error_message or run.run_status)
            raise StageFailed(f"indexer {name} did not index the probe: {why}")
        self._until(lambda: self.backend.get(self.key) is not None, self.options.stage_timeout, "in the index")
        return f"indexer {name} ran ({run.run_status}, {run.processed} processed) and indexed the probe"

    def searchable(self) -> str:
        url = f"{self.function}/api/search"
        params = {"text": self.options.query, "k": "1", "filter": f"blob_path={self.blob_name}"}
        headers = {"x-functions-key": self.settings.function_key} if self.settings.function_key else {}
        deadline = time.monotonic() + self.options.stage_timeout
        last = "no answer yet"
        while True:
            timeout = max(1.0, min(CALL_TIMEOUT, deadline - time.monotonic()))
            try:
                answer = self.http.get(url, params=params, headers=headers, timeout=timeout)
            except requests.RequestException as exc:
                last = f"GET /api/search failed: {type(exc).__name__}"
            else:
                if answer.status_code == 200 and any(r.get("key") == self.key for r in answer.json()["results"]):
                    return f"GET /api/search?text={self.options.query!r} finds the probe"
                if answer.status_code in (401, 403):
                    raise StageFailed(
                        f"refused the key (HTTP {answer.status_code}): set IMGSEARCH_FUNCTION_KEY to a function key "
                        f"of search",
                        service="function",
                    )
                last = _answer_text(answer)
            if time.monotonic() + self.options.poll_interval > deadline:
                if self._about_vision(last):
                    raise StageFailed(f"failed behind the Function: {last}", service="vision", behind=True)
                raise StageFailed(f"the probe was not found within {self.options.stage_timeout:g} s (last: {last})")
            time.sleep(self.options.poll_interval)

    def _about_vision(self, answer: str) -> bool:
        """Whether the Function's error answer is about Vision (its endpoint, call or settings)."""
        if self.settings.uses_offline_model or "answered HTTP" not in answer:
            return False
        marks = ["retrieval:vectorize", "VISION_", "Vision", *self.settings.vision_endpoints]
        return any(mark in answer for mark in marks)

    def found_by_vectorizer(self) -> str:
        condition = [Condition("blob_path", "eq", self.blob_name)]
        try:
            hits = self.backend.search_by_text(self.options.query, k=1, filters=condition)  # type: ignore[attr-defined]
        except ServiceError as exc:
            raise _vectorizer_failure(exc) from exc
        if not any(hit.key == self.key for hit in hits):
            raise StageFailed("a text query through the index's vectorizer did not find the probe", service="search")
        return f"a kind: text vector query for {self.options.query!r} finds the probe"

    def delete(self) -> str:
        try:
            self.blob.delete_blob()
        except Exception as exc:  # noqa: BLE001 - reported with the service that gave it
            raise StageFailed(what_was_seen(exc), service="storage", cause=exc) from exc
        self.uploaded = False
        if self.pull is None:
            return "the probe's blob is deleted"
        name = indexer_name(self.settings)
        try:
            run = self.pull.run(name, wait=True, timeout=self.options.indexer_timeout)
        except ServiceError as exc:
            raise StageFailed(what_was_seen(exc), service="search", cause=exc) from exc
        return f"the probe's blob is deleted; indexer {name} ran ({run.run_status})"

    def gone(self) -> str:
        self._until(lambda: self.backend.get(self.key) is None, self.options.stage_timeout, "gone from the index")
        return "the probe's document has left the index"

    def _until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if done():
                    return
            except ServiceError as exc:
                raise StageFailed(what_was_seen(exc), service="search", cause=exc) from exc
            if time.monotonic() + self.options.poll_interval > deadline:
                raise StageFailed(f"the probe's document was not {what} within {timeout:g} s")
            time.sleep(self.options.poll_interval)

    # --- cleaning up

    def clean_up(self) -> None:
        """Remove the probe's blob and document if a stage left them, then close the clients."""
        with _noted(self.report.cleanup, f"delete blob {self.blob_name}"):
            if self.uploaded and self.blob.exists():
                self.blob.delete_blob()
                self.report.cleanup.append(f"deleted the blob {self.blob_name}")
        with _noted(self.report.cleanup, "delete the probe's document"):
            if self.indexable and self.report.failure is not None and self.backend.get(self.key) is not None:
                self.backend.delete([self.key])
                self.report.cleanup.append("deleted the probe's document from the index")
        self.http.close()
        close_quietly(self.backend, self.pull, self.container)


@contextmanager
def _noted(notes: list[str], what: str) -> Iterator[None]:
    """Clean-up is best effort: a step that fails is noted, the next still runs."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - noted in the report, never raised over the stage's failure
        notes.append(f"could not {what}: {redact_urls(describe(exc))}")


def _answer_text(answer: requests.Response) -> str:
    try:
        error = answer.json().get("error") or {}
        message = error.get("message") or answer.text[:200]
    except ValueError:
        message = answer.text[:200]
    return f"GET /api/search answered HTTP {answer.status_code}: {message}"


def _vectorizer_failure(exc: ServiceError) -> StageFailed:
    """A failure of the service-side text query, named: the search service says so when it
    could not use the vectorizer (it reports the endpoint's status, 401 for a refused key)."""
    text = describe(exc)
    if "vectoriz" not in text.lower():
        return StageFailed(what_was_seen(exc), service="search", cause=exc)
    if "'401'" in text or "'403'" in text:
        problem = ConfigurationError(
            f"refused the search service's key: {text}; give the search service the function key of vectorize "
            f"(SEARCH_VECTORIZER_KEY, then `imgsearch ensure-index`; after `azd up`: azd hooks run postdeploy)"
        )
        return StageFailed(str(problem), service="vectorizer", cause=problem)
    return StageFailed(f"could not be used by the search service: {text}", cause=exc)
