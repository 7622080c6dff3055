"""Backfill and reconcile of a blob container (Azurite) into an Azure AI Search index (the
search double, through azure-search-documents), with the local vectorizer server answering
over HTTP; interrupted runs (an exception, or a killed process) resume without vectorizing
or uploading anything twice."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.indexing.bulk import RunOptions
from indexer.indexing.checkpoint import Checkpoint, checkpoint_path
from indexer.indexing.failures import JsonlFailureLog
from indexer.indexing.run import index_source
from indexer.model_versions import OFFLINE_MULTILINGUAL
from indexer.services import build_vectorizer
from indexer.settings import Settings
from indexer.sources.blob import BlobItem, BlobSource
from tests.fixtures.azurite import blob_key

REPO_ROOT = Path(__file__).resolve().parents[2]

PHOTO_NAMES = ("cat.jpg", "dog.jpg", "fire_truck.jpg", "coffee.jpg")


@pytest.fixture(scope="module")
def photos(samples_dir: Path) -> dict[str, bytes]:
    """Four real photos from samples/ by file name."""
    return {name: (samples_dir / name).read_bytes() for name in PHOTO_NAMES}


def tiny_jpeg(seed: int, size: int = 32) -> bytes:
    """A distinct small photo-like JPEG (noise over a colour), so every blob has its own hash."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=3)
    pixels = np.clip(base + rng.normal(0, 40, size=(size, size, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "JPEG", quality=80)
    return out.getvalue()


def upload_all(container, blobs: dict[str, bytes]) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda item: container.upload_blob(item[0], item[1], overwrite=True), blobs.items()))


def image_calls(vision_server) -> int:
    return sum(1 for r in vision_server.requests.all() if r.path.endswith("vectorizeImage"))


def uploaded_documents(search_double, index_name: str) -> int:
    """Document actions the search double received in indexing batches (all uploads here)."""
    return sum(r.actions for r in search_double.requests_for(index_name, "index") if r.status < 300)


@pytest.fixture
def index(azure_search_backend):
    """An Azure AI Search index (the double, through azure-search-documents), pinned to the
    local multilingual model."""
    return azure_search_backend


@pytest.fixture
def vectorizer(vision_server):
    settings = Settings(
        VISION_ENDPOINT=vision_server.url, VISION_KEY=vision_server.key, VISION_MODEL_VERSION=OFFLINE_MULTILINGUAL
    )
    return build_vectorizer(settings)


@pytest.fixture
def many_blobs(blob_container, photos) -> dict[str, bytes]:
    """300 generated 32x32 JPEGs in folders, plus the sample photos."""
    blobs = {f"gen/{i // 100}/img-{i:03d}.jpg": tiny_jpeg(i) for i in range(300)}
    blobs.update({f"samples/{name}": data for name, data in photos.items()})
    upload_all(blob_container, blobs)
    return blobs


class Interrupted(Exception):
    """Stands for Ctrl-C or a crash in the middle of a run."""


def test_interrupted_backfill_resumes_and_vectorizes_each_blob_once(
    blob_container, many_blobs, vectorizer, vision_server, index, tmp_path, search_double, search_index_name
):
    source = BlobSource(blob_container)
    checkpoint_file = checkpoint_path(tmp_path, source, "images")
    concurrency, batch_size, stop_after = 4, 20, 120
    calls_before = image_calls(vision_server)
    seen: list[str] = []

    def interrupt(outcome) -> None:
        seen.append(outcome.key)
        if len(seen) == stop_after:
            raise Interrupted()

    options = RunOptions(concurrency=concurrency, batch_size=batch_size)
    with pytest.raises(Interrupted):
        index_source(
            source,
            vectorizer=vectorizer,
            backend=index,
            checkpoint=Checkpoint(checkpoint_file),
            options=replace(options, on_outcome=interrupt),
        )
    assert checkpoint_file.is_file()
    assert 0 < index.count() < len(many_blobs)

    resumed = index_source(
        source, vectorizer=vectorizer, backend=index, checkpoint=Checkpoint(checkpoint_file), options=options
    )

    total = len(many_blobs)
    assert resumed.completed and resumed.failed == []
    assert resumed.listed == total
    assert resumed.resumed == stop_after  # finished before the interruption: skipped unread
    assert resumed.indexed + resumed.unchanged + resumed.resumed == total
    assert index.count() == total
    for name in ("gen/0/img-000.jpg", "gen/2/img-299.jpg", "samples/cat.jpg"):
        assert index.get(blob_key(blob_container, name)) is not None
    # Every blob vectorized once; only the work in flight at the interruption (the pending
    # batch and the items being prepared) may have been vectorized a second time.
    calls = image_calls(vision_server) - calls_before
    assert total <= calls <= total + batch_size + 2 * concurrency
    # And each document was uploaded to the index exactly once: what was written but not yet
    # reported at the interruption was found unchanged (content hash), not uploaded again.
    assert uploaded_documents(search_double, search_index_name) == total
    assert not checkpoint_file.exists()  # a finished run leaves no checkpoint behind

    # A fresh run over an unchanged container costs no Vision call at all.
    again = index_source(
        source, vectorizer=vectorizer, backend=index, checkpoint=Checkpoint(checkpoint_file), options=options
    )
    assert again.unchanged == total and again.indexed == 0
    assert image_calls(vision_server) - calls_before == calls
    assert uploaded_documents(search_double, search_index_name) == total


def test_backfill_of_a_prefix_records_bad_blobs_and_skips_them_next_time(
    blob_container, vectorizer, index, vision_server, tmp_path
):
    upload_all(
        blob_container,
        {"a/1.jpg": tiny_jpeg(1), "a/2.jpg": tiny_jpeg(2), "a/broken.jpg": b"not an image", "b/3.jpg": tiny_jpeg(3)},
    )
    source = BlobSource(blob_container, prefix="a/")
    failures = JsonlFailureLog(tmp_path / "failures.jsonl")
    checkpoint_file = checkpoint_path(tmp_path, source, "images")

    first = index_source(
        source, vectorizer=vectorizer, backend=index, failures=failures, checkpoint=Checkpoint(checkpoint_file)
    )

    assert (first.listed, first.indexed, len(first.failed)) == (3, 2, 1)
    assert index.count() == 2  # b/3.jpg is outside the prefix
    [record] = failures.records()
    assert record.source.endswith("/a/broken.jpg") and "InvalidImageError" in record.reason and record.etag
    second = index_source(
        source, vectorizer=vectorizer, backend=index, failures=failures, checkpoint=Checkpoint(checkpoint_file)
    )
    assert second.known_failures == 1 and second.unchanged == 2 and second.failed == []


def blob(name: str, etag: str) -> BlobItem:
    return BlobItem(f"c/{name}", f"c/{name}", lambda: b"", blob_name=name, etag=etag)


def test_checkpoint_is_written_atomically_and_only_trusted_for_its_own_model_version(tmp_path):
    path = tmp_path / "checkpoints" / "backfill-x.json"
    checkpoint = Checkpoint(path).load(model_version=OFFLINE_MULTILINGUAL)
    checkpoint.mark(blob("a.jpg", "0x1"))
    checkpoint.save()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind

    assert Checkpoint(path).load(model_version=OFFLINE_MULTILINGUAL).is_done(blob("a.jpg", "0x1"))
    assert not Checkpoint(path).load(model_version=OFFLINE_MULTILINGUAL).is_done(blob("a.jpg", "0x2"))  # changed
    assert Checkpoint(path, restart=True).load(model_version=OFFLINE_MULTILINGUAL).done == {}
    assert Checkpoint(path).load(model_version="2023-04-15").done == {}
    assert Checkpoint(path).load(model_version=OFFLINE_MULTILINGUAL, force=True).done == {}
    path.write_text("{ torn")
    assert Checkpoint(path).load(model_version=OFFLINE_MULTILINGUAL).done == {}


def test_reconcile_removes_gone_documents_and_indexes_new_and_changed_blobs(
    blob_container, vectorizer, index, vision_server, tmp_path
):
    upload_all(blob_container, {f"p/{i}.jpg": tiny_jpeg(10 + i) for i in range(6)})
    source = BlobSource(blob_container)
    index_source(source, vectorizer=vectorizer, backend=index, checkpoint=Checkpoint(tmp_path / "cp.json"))
    assert index.count() == 6
    # While the trigger was not looking: two deleted, one replaced, one added, one re-uploaded unchanged.
    blob_container.delete_blob("p/0.jpg")
    blob_container.delete_blob("p/1.jpg")
    blob_container.upload_blob("p/2.jpg", tiny_jpeg(99), overwrite=True)
    blob_container.upload_blob("p/new.jpg", tiny_jpeg(100))
    blob_container.upload_blob("p/3.jpg", tiny_jpeg(13), overwrite=True)
    before = image_calls(vision_server)

    summary = index_source(source, vectorizer=vectorizer, backend=index, remove_gone=True)

    assert (summary.listed, summary.removed, summary.indexed, summary.unchanged) == (5, 2, 2, 3)
    assert image_calls(vision_server) - before == 2  # only the new and the changed blob
    assert index.count() == 5
    assert index.get(blob_key(blob_container, "p/0.jpg")) is None
    changed = index.get(blob_key(blob_container, "p/2.jpg"))
    assert changed["size_bytes"] == len(tiny_jpeg(99))
    # Nothing left to do.
    again = index_source(source, vectorizer=vectorizer, backend=index, remove_gone=True)
    assert (again.removed, again.indexed, again.unchanged) == (0, 0, 5)


def test_reconcile_of_a_prefix_leaves_documents_outside_it(blob_container, vectorizer, index, tmp_path):
    upload_all(blob_container, {"keep/a.jpg": tiny_jpeg(1), "scope/b.jpg": tiny_jpeg(2), "scope/c.jpg": tiny_jpeg(3)})
    index_source(
        BlobSource(blob_container), vectorizer=vectorizer, backend=index, checkpoint=Checkpoint(tmp_path / "cp.json")
    )
    blob_container.delete_blob("keep/a.jpg")
    blob_container.delete_blob("scope/b.jpg")

    summary = index_source(
        BlobSource(blob_container, prefix="scope/"), vectorizer=vectorizer, backend=index, remove_gone=True
    )

    assert summary.removed == 1
    assert index.get(blob_key(blob_container, "keep/a.jpg")) is not None  # out of scope
    assert index.get(blob_key(blob_container, "scope/b.jpg")) is None


# --------------------------------------------------------------------------- the CLI


def cli_env(azurite, container, vision_server, search_double, index_name: str, data_dir: Path) -> dict[str, str]:
    return {
        "IMAGES_STORAGE": azurite.connection_string,
        "IMAGES_CONTAINER": container.container_name,
        "VISION_ENDPOINT": vision_server.url,
        "VISION_KEY": vision_server.key,
        "VISION_MODEL_VERSION": OFFLINE_MULTILINGUAL,
        "IMGSEARCH_DATA_DIR": str(data_dir),
        "SEARCH_ENDPOINT": search_double.endpoint,
        "SEARCH_KEY": search_double.api_key,
        "SEARCH_INDEX_NAME": index_name,
        "VISION_CONCURRENCY": "2",
    }


def test_cli_backfill_reconcile_and_watch_print_json_summaries(
    run_cli, azurite, blob_container, vision_server, search_double, search_index_name, tmp_path
):
    upload_all(blob_container, {"x/1.jpg": tiny_jpeg(1), "x/2.jpg": tiny_jpeg(2), "x/bad.jpg": b"nope"})
    data_dir = tmp_path / "data"
    env = cli_env(azurite, blob_container, vision_server, search_double, search_index_name, data_dir)

    result = run_cli("backfill", "--json", env=env, data_dir=data_dir)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert list(summary) == [
        "container", "prefix", "listed", "resumed", "known_failures", "indexed", "unchanged", "failed",
        "checkpoint", "completed", "elapsed_seconds",
    ]  # fmt: skip
    assert (summary["listed"], summary["indexed"], len(summary["failed"])) == (3, 2, 1)
    assert summary["completed"] is True
    assert "InvalidImageError" in (tmp_path / "data" / "failures.jsonl").read_text()

    blob_container.delete_blob("x/1.jpg")
    result = run_cli("reconcile", "--json", env=env, data_dir=data_dir)
    assert result.exit_code == 0, result.stderr
    reconciled = json.loads(result.stdout)
    assert list(reconciled) == [
        "container", "prefix", "listed", "known_failures", "indexed", "unchanged", "removed", "failed",
        "removal_skipped", "elapsed_seconds",
    ]  # fmt: skip
    assert reconciled["removed"] == 1

    blob_container.upload_blob("x/3.jpg", tiny_jpeg(3))
    result = run_cli("watch", "--once", "--json", env=env, data_dir=data_dir)
    assert result.exit_code == 0, result.stderr
    watched = json.loads(result.stdout)
    assert watched["polls"] == 1 and watched["created"] == 3  # existing blobs are indexed at start
    assert [f["blob"] for f in watched["failed"]] == ["x/bad.jpg"]

    # One command lists both records: the CLI's (backfill) and the Function's (watch, as the
    # Function app records them in the imgsearch-failures container).
    result = run_cli("failures", "--json", env=env, data_dir=data_dir)
    assert result.exit_code == 0, result.stderr
    records = json.loads(result.stdout)
    assert [r["source"].rsplit("/", 1)[-1] for r in records] == ["bad.jpg", "bad.jpg"]
    stores = [r["store"] for r in records]
    assert stores[0].endswith("failures.jsonl") and stores[1].endswith("/imgsearch-failures")
    assert all("not a readable image" in r["reason"] for r in records)
    plain = run_cli("failures", env=env, data_dir=data_dir)
    assert plain.stdout.count("bad.jpg: ") == 2


def test_a_killed_backfill_process_resumes_where_it_stopped(
    azurite, blob_container, vision_server, search_double, search_index_name, tmp_path
):
    total = 100
    upload_all(blob_container, {f"k/{i:03d}.jpg": tiny_jpeg(1000 + i) for i in range(total)})
    data_dir = tmp_path / "data"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VISION_", "SEARCH_", "IMAGES_"))},
        **cli_env(azurite, blob_container, vision_server, search_double, search_index_name, data_dir),
    }
    command = [sys.executable, "-m", "indexer", "backfill", "--json", "--batch-size", "10"]
    calls_before = image_calls(vision_server)

    first = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    checkpoints = data_dir / "checkpoints"
    deadline = time.monotonic() + 60
    try:
        # The checkpoint is first written after 50 finished blobs; kill the run right then.
        while not (checkpoints.is_dir() and any(checkpoints.glob("*.json"))):
            assert first.poll() is None, first.stderr.read().decode()
            assert time.monotonic() < deadline, "the backfill never wrote a checkpoint"
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait(timeout=30)
        first.stdout.close()
        first.stderr.close()
    assert first.returncode == -signal.SIGKILL

    second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["completed"] is True and summary["failed"] == []
    assert summary["listed"] == total and summary["resumed"] >= 50
    assert summary["resumed"] + summary["indexed"] + summary["unchanged"] == total
    info = subprocess.run(
        [sys.executable, "-m", "indexer", "info", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["documents"] == total
    # Each blob vectorized once, but for what was in flight at the kill (a pending batch of
    # 10 and 2 * VISION_CONCURRENCY items being prepared).
    calls = image_calls(vision_server) - calls_before
    assert total <= calls <= total + 10 + 2 * 2
    assert uploaded_documents(search_double, search_index_name) == total  # no document uploaded twice


def test_upload_of_a_folder_goes_on_past_a_file_it_cannot_read(run_cli, azurite, blob_container, tmp_path):
    """A file too large to read is skipped, listed and counted; the files after it are uploaded."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, data in {"a.jpg": tiny_jpeg(1), "b-huge.jpg": tiny_jpeg(2, size=400), "c.jpg": tiny_jpeg(3)}.items():
        (folder / name).write_bytes(data)
    limit = (folder / "b-huge.jpg").stat().st_size - 1
    env = {
        "IMAGES_STORAGE": azurite.connection_string,
        "IMAGES_CONTAINER": blob_container.container_name,
        "MAX_IMAGE_BYTES": str(limit),
    }

    result = run_cli("upload", folder, env=env, data_dir=tmp_path / "data")

    assert result.exit_code == 0, result.output
    assert sorted(blob.name for blob in blob_container.list_blobs()) == ["a.jpg", "c.jpg"]
    assert f"skipped {folder.resolve() / 'b-huge.jpg'}: " in result.stderr and f"{limit:,}" in result.stderr
    assert "2 image(s) uploaded" in result.stderr and "1 file(s) that could not be read skipped" in result.stderr
