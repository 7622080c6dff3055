"""``imgsearch``, run as a user runs it: in-process through typer's runner (sharing the offline
model loaded once), and as a real console script in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from indexer.backends.numpy_index import NumpyIndex
from indexer.indexing.pipeline import content_hash
from indexer.model_versions import OFFLINE_ENGLISH, OFFLINE_MULTILINGUAL
from indexer.schema import load_schema
from indexer.sources.folder import FolderSource
from tests.fixtures.cli import clean_env
from tests.fixtures.real_photos import REAL_PHOTO_SUBJECTS

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def hits_of(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def name_of(hit: dict) -> str:
    return Path(hit["source"]).name


def local_index(data_dir: Path, name: str = "images") -> NumpyIndex:
    return NumpyIndex(data_dir, name)


# --- index, search, info over the sample photos ---------------------------------------------


def test_index_reports_every_sample_indexed(indexed_samples) -> None:
    summary = indexed_samples.summary

    assert summary["images"] == len(indexed_samples.images)
    assert summary["indexed"] == len(indexed_samples.images)
    assert summary["failed"] == [] and summary["removed"] == 0
    assert summary["model_version"] == OFFLINE_MULTILINGUAL
    assert summary["container"] == FolderSource(indexed_samples.folder).label


def test_search_a_cat_ranks_the_cat_photo_first(indexed_samples) -> None:
    hits = hits_of(indexed_samples.run("search", "a cat", "--json"))

    assert name_of(hits[0]) == "cat.jpg"
    assert [hit["rank"] for hit in hits] == list(range(1, len(hits) + 1))
    assert len(hits) == 10
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("query", ["eine Katze", "un gato", "一只猫"])
def test_search_in_another_language_finds_the_cat_too(indexed_samples, query) -> None:
    hits = hits_of(indexed_samples.run("search", query, "-k", "3", "--json"))

    assert name_of(hits[0]) == "cat.jpg"


def test_search_text_output_lists_rank_score_and_source(indexed_samples) -> None:
    result = indexed_samples.run("search", "a cat", "-k", "3")

    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    rank, score, source = lines[0].split(maxsplit=2)
    assert rank == "1" and 0 < float(score) <= 1 and Path(source).name == "cat.jpg"


def test_search_by_example_image_ranks_that_image_first(indexed_samples) -> None:
    example = indexed_samples.folder / "zebra.jpg"

    hits = hits_of(indexed_samples.run("search", "--image", example, "-k", "3", "--json"))

    assert hits[0]["source"] == str(example.resolve())
    assert hits[0]["score"] > hits[1]["score"]


def test_search_by_example_image_url_ranks_that_image_first(indexed_samples, image_url_server) -> None:
    example = indexed_samples.folder / "lighthouse.jpg"
    url = image_url_server("cli-lighthouse.jpg", example.read_bytes(), "image/jpeg")

    allowed = {"IMGSEARCH_ALLOW_PRIVATE_URLS": "true"}  # the test server is on loopback
    hits = hits_of(indexed_samples.run("search", "--image", url, "-k", "3", "--json", env=allowed))

    assert hits[0]["source"] == str(example.resolve())
    refused = indexed_samples.run("search", "--image", url, "-k", "3", "--json")
    assert refused.exit_code == 2
    assert "the image URL could not be fetched" in refused.output


def test_search_threshold_and_filter_narrow_the_results(indexed_samples) -> None:
    everything = hits_of(indexed_samples.run("search", "an animal", "-k", "100", "--json"))
    cutoff = everything[2]["score"]

    above = hits_of(indexed_samples.run("search", "an animal", "-k", "100", "--threshold", cutoff, "--json"))
    only_png = hits_of(indexed_samples.run("search", "an animal", "--filter", "content_type=image/png", "--json"))

    assert [h["key"] for h in above] == [h["key"] for h in everything if h["score"] >= cutoff]
    pngs = sorted(name for name in indexed_samples.images if name.endswith(".png"))
    assert sorted(name_of(h) for h in only_png) == pngs


def test_a_filter_on_an_unknown_field_is_a_clear_error(indexed_samples) -> None:
    result = indexed_samples.run("search", "a cat", "--filter", "colour=red")

    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "'colour'" in result.stderr and "content_type" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [[], ["a cat", "--image", "x.jpg"]])
def test_search_needs_exactly_one_of_text_and_image(indexed_samples, args) -> None:
    result = indexed_samples.run("search", *args)

    assert result.exit_code == 2 and "either a TEXT" in result.stderr


def test_search_with_a_missing_example_file_names_it(indexed_samples) -> None:
    result = indexed_samples.run("search", "--image", "no/such/photo.jpg")

    assert result.exit_code == 2 and "no/such/photo.jpg" in result.stderr


def test_search_refuses_a_query_over_the_word_limit_before_any_work(indexed_samples) -> None:
    result = indexed_samples.run("search", " ".join(["cat"] * 71))

    assert result.exit_code == 2 and "71 words" in result.stderr and "70" in result.stderr


def test_search_threshold_out_of_range_is_an_argument_error(indexed_samples) -> None:
    result = indexed_samples.run("search", "a cat", "--threshold", "7")

    assert result.exit_code == 2 and "threshold" in result.stderr


def test_info_shows_the_pin_the_count_and_the_local_backend(indexed_samples) -> None:
    info = json.loads(indexed_samples.run("info", "--json").stdout)
    text = indexed_samples.run("info").stdout

    assert info["model_version"] == OFFLINE_MULTILINGUAL and info["dimensions"] == 512
    assert info["documents"] == len(indexed_samples.images)
    assert info["backend"] == "numpy" and info["location"] == str(indexed_samples.data_dir.resolve())
    assert info["vision_endpoint"] is None
    assert f"documents:      {len(indexed_samples.images)}" in text and OFFLINE_MULTILINGUAL in text


def test_info_names_the_vision_endpoint_but_never_a_key(run_cli) -> None:
    secret = "k3y-that-must-not-be-printed"
    env = {"VISION_ENDPOINT": "http://127.0.0.1:9", "VISION_KEY": secret, "VISION_MODEL_VERSION": OFFLINE_MULTILINGUAL}

    text = run_cli("info", env=env)
    as_json = run_cli("info", "--json", env=env)

    assert text.exit_code == 0 and as_json.exit_code == 0
    assert "http://127.0.0.1:9" in text.stdout and json.loads(as_json.stdout)["vision_endpoint"] == "http://127.0.0.1:9"
    assert secret not in text.output and secret not in as_json.output


# --- re-indexing a folder that changed --------------------------------------------------------


@pytest.fixture
def small_folder(tmp_path, samples_dir) -> Path:
    folder = tmp_path / "photos"
    (folder / "pets").mkdir(parents=True)
    for name in ("cat.jpg", "coffee.jpg", "fire_truck.jpg"):
        shutil.copy(samples_dir / name, folder / name)
    shutil.copy(samples_dir / "dog.jpg", folder / "pets" / "dog.jpg")
    return folder


def index_json(run_cli, folder, *extra, env=None) -> dict:
    result = run_cli("index", folder, "--json", *extra, env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_reindex_updates_changed_files_removes_deleted_ones_and_skips_the_rest(
    run_cli, small_folder, tmp_path, samples_dir
) -> None:
    first = index_json(run_cli, small_folder)
    source = FolderSource(small_folder)
    coffee_key = source.get_item("coffee.jpg").key
    shutil.copy(samples_dir / "tiger.jpg", small_folder / "coffee.jpg")  # same name, new bytes
    (small_folder / "fire_truck.jpg").unlink()

    second = index_json(run_cli, small_folder)

    assert (first["indexed"], first["unchanged"]) == (4, 0)
    assert (second["indexed"], second["unchanged"], second["removed"], second["failed"]) == (1, 2, 1, [])
    index = local_index(tmp_path / "imgsearch-data")
    assert index.count() == 3
    assert index.get(coffee_key)["content_hash"] == content_hash((samples_dir / "tiger.jpg").read_bytes())
    hits = hits_of(run_cli("search", "a tiger", "-k", "1", "--json"))
    assert name_of(hits[0]) == "coffee.jpg"


def test_bad_files_are_reported_and_skipped_and_nothing_indexed_is_lost(run_cli, small_folder, tmp_path) -> None:
    index_json(run_cli, small_folder)
    index = local_index(tmp_path / "imgsearch-data")
    dog_key = FolderSource(small_folder).get_item("pets/dog.jpg").key
    dog_before = index.get(dog_key)
    (small_folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (small_folder / "readme.png").write_text("not an image, whatever the extension says")
    (small_folder / "pets" / "dog.jpg").write_bytes(b"GIF89a garbage")  # a good file gone bad

    result = run_cli("index", small_folder)

    assert result.exit_code == 0, result.output
    for name in ("corrupt.jpg", "readme.png", "dog.jpg"):
        assert any(line.startswith("skipped ") and name in line for line in result.stderr.splitlines()), name
    # readme.png is named like an image: one of the 6 images, and one of the 3 skipped
    assert "6 images" in result.stdout and "3 unchanged, 3 skipped, 0 removed" in result.stdout
    assert "the run completed" in result.stderr
    assert index.count() == 4 and index.get(dog_key) == dog_before


def test_a_file_whose_extension_lies_about_its_format_is_indexed_with_its_true_type(
    run_cli, small_folder, tmp_path, samples_dir
) -> None:
    shutil.copy(samples_dir / "gift_box.png", small_folder / "gift_box.jpg")  # a PNG named .jpg

    index_json(run_cli, small_folder)

    stored = local_index(tmp_path / "imgsearch-data").get(FolderSource(small_folder).get_item("gift_box.jpg").key)
    assert stored["content_type"] == "image/png"


def test_an_unchanged_rerun_does_not_need_the_model(run_cli, small_folder, tmp_path) -> None:
    index_json(run_cli, small_folder)
    index = local_index(tmp_path / "imgsearch-data")
    hashes_before = index.keys_with_hashes()

    again = index_json(run_cli, small_folder)

    assert (again["indexed"], again["unchanged"], again["removed"]) == (0, 4, 0)
    assert index.keys_with_hashes() == hashes_before


def test_indexing_a_missing_folder_is_a_clear_error(run_cli, tmp_path) -> None:
    result = run_cli("index", tmp_path / "nowhere")

    assert result.exit_code == 2 and "nowhere" in result.stderr and "does not exist" in result.stderr


def test_searching_before_any_index_is_a_set_up_error_naming_the_commands(run_cli) -> None:
    result = run_cli("search", "a cat")

    assert result.exit_code == 2 and "does not exist" in result.stderr  # 2: a set-up step not taken
    assert "`imgsearch ensure-index`" in result.stderr and "`imgsearch index PATH`" in result.stderr
    assert "ensure_index" not in result.stderr  # a command to type, not a Python function


# --- the pin -------------------------------------------------------------------------------


def test_index_into_an_index_pinned_to_another_model_exits_3_and_changes_nothing(
    run_cli, small_folder, tmp_path
) -> None:
    created = run_cli("ensure-index", env={"VISION_MODEL_VERSION": "2022-04-11"})
    assert created.exit_code == 0 and OFFLINE_ENGLISH in created.stdout

    result = run_cli("index", small_folder)

    assert result.exit_code == 3
    message = result.stderr  # the pin check's message (IndexPin.check_pin), as every edge shows it
    assert f"'{OFFLINE_ENGLISH}' (384 dimensions), not '{OFFLINE_MULTILINGUAL}' (512 dimensions)" in message
    assert "local numpy index 'images'" in message and "VISION_MODEL_VERSION" in message and "--repin" in message
    assert "Traceback" not in result.output
    index = local_index(tmp_path / "imgsearch-data")
    assert index.count() == 0 and index.get_pin().model_version == OFFLINE_ENGLISH


def test_ensure_index_creates_the_pinned_index_once(run_cli, tmp_path) -> None:
    first = run_cli("ensure-index")
    again = run_cli("ensure-index")

    assert first.exit_code == 0 and again.exit_code == 0 and OFFLINE_MULTILINGUAL in first.stdout
    info = json.loads(run_cli("info", "--json").stdout)
    assert info["index_exists"] and info["documents"] == 0 and info["model_version"] == OFFLINE_MULTILINGUAL


def test_ensure_index_warns_when_the_vectorizer_would_call_a_function_without_its_key(run_cli) -> None:
    remote = run_cli("ensure-index", env={"SEARCH_VECTORIZER_URI": "https://func-x.azurewebsites.net/api/vectorize"})
    keyed = run_cli(
        "ensure-index",
        env={"SEARCH_VECTORIZER_URI": "https://func-x.azurewebsites.net/api/vectorize", "SEARCH_VECTORIZER_KEY": "k"},
    )
    local = run_cli("ensure-index", env={"SEARCH_VECTORIZER_URI": "http://127.0.0.1:7071/api/vectorize"})

    assert remote.exit_code == keyed.exit_code == local.exit_code == 0
    assert "SEARCH_VECTORIZER_KEY" in remote.stderr and "401" in remote.stderr
    assert "warning" not in keyed.stderr and "warning" not in local.stderr
    assert "k" not in keyed.stdout.split()  # the key is never printed


def test_productions_model_version_works_against_the_local_stand_in(run_cli, small_folder, tmp_path, vision_server):
    """VISION_MODEL_VERSION=2023-04-15, as in production: the stand-in answers with its offline
    model, and the index is pinned to what it reports, never to Azure's name."""
    env = {"VISION_ENDPOINT": vision_server.url, "VISION_KEY": vision_server.key, "VISION_MODEL_VERSION": "2023-04-15"}

    result = run_cli("index", small_folder, "--json", env=env)

    assert result.exit_code == 0, result.output
    index = local_index(tmp_path / "imgsearch-data")
    assert index.get_pin().model_version == OFFLINE_MULTILINGUAL
    stored = {index.get(key)["model_version"] for key in index.keys_with_hashes()}
    assert stored == {OFFLINE_MULTILINGUAL}  # no local vector ever carries Azure's name
    hits = json.loads(run_cli("search", "a dog", "--json", env=env).stdout)
    assert hits and hits[0]["fields"]["model_version"] == OFFLINE_MULTILINGUAL


def test_a_stand_in_padding_to_azures_length_pins_its_own_name_and_keeps_every_score(
    run_cli, small_folder, tmp_path, vision_server, faulty_vision_server
):
    padded = faulty_vision_server(pad_to=1024, keys=["padded-key"])
    runs = {
        "plain": ({"VISION_ENDPOINT": vision_server.url, "VISION_KEY": vision_server.key}, tmp_path / "plain"),
        "padded": ({"VISION_ENDPOINT": padded.url, "VISION_KEY": "padded-key"}, tmp_path / "padded"),
    }
    scores = {}
    for name, (env, data_dir) in runs.items():
        assert run_cli("index", small_folder, env=env, data_dir=data_dir).exit_code == 0
        hits = json.loads(run_cli("search", "a dog", "--json", env=env, data_dir=data_dir).stdout)
        scores[name] = [(name_of(h), round(h["score"], 5)) for h in hits]

    pin = local_index(tmp_path / "padded").get_pin()
    assert (pin.model_version, pin.dimensions) == (OFFLINE_MULTILINGUAL, 1024)
    assert local_index(tmp_path / "plain").get_pin().dimensions == 512
    assert scores["padded"] == scores["plain"] and scores["plain"][0][0] == "dog.jpg"


def test_an_index_pinned_to_azures_version_refuses_the_stand_ins_vectors(
    run_cli, small_folder, tmp_path, vision_server
) -> None:
    index = local_index(tmp_path / "imgsearch-data")
    index.ensure_index(load_schema("2023-04-15"))  # as if built with Azure AI Vision
    env = {"VISION_ENDPOINT": vision_server.url, "VISION_KEY": vision_server.key, "VISION_MODEL_VERSION": "2023-04-15"}

    result = run_cli("index", small_folder, env=env)

    assert result.exit_code == 3 and index.count() == 0


def test_ensure_index_repins_an_empty_index_and_never_one_with_documents(run_cli, small_folder, tmp_path) -> None:
    index = local_index(tmp_path / "imgsearch-data")
    index.ensure_index(load_schema(OFFLINE_ENGLISH))  # pinned to another version, empty

    refused = run_cli("ensure-index")
    assert refused.exit_code == 3 and index.get_pin().model_version == OFFLINE_ENGLISH

    repinned = run_cli("ensure-index", "--repin")
    assert repinned.exit_code == 0, repinned.output
    assert local_index(tmp_path / "imgsearch-data").get_pin().model_version == OFFLINE_MULTILINGUAL
    assert run_cli("index", small_folder).exit_code == 0
    with_documents = run_cli("ensure-index", "--repin", env={"VISION_MODEL_VERSION": "2022-04-11"})
    assert with_documents.exit_code == 3 and "never re-pinned" in with_documents.stderr
    assert local_index(tmp_path / "imgsearch-data").count() == 4


def test_the_compression_asked_for_is_checked_like_the_pin_and_an_unset_one_keeps_the_index_as_it_is(
    run_cli, small_folder, tmp_path
) -> None:
    created = run_cli("ensure-index", env={"SEARCH_VECTOR_COMPRESSION": "binary"})
    assert created.exit_code == 0 and "with binary quantization" in created.stdout

    other = run_cli("ensure-index", env={"SEARCH_VECTOR_COMPRESSION": "scalar"})
    assert other.exit_code == 3 and "Traceback" not in other.output
    assert "stores its vectors with binary quantization, not with scalar (int8) quantization" in other.stderr
    assert "SEARCH_VECTOR_COMPRESSION=scalar asks for the latter; nothing was changed" in other.stderr
    assert "--repin" in other.stderr
    assert local_index(tmp_path / "imgsearch-data").schema.compression == "binary"

    unset = run_cli("index", small_folder)  # the default is for new indexes: this one stays binary
    assert unset.exit_code == 0, unset.output
    info = json.loads(run_cli("info", "--json").stdout)
    assert info["vector_compression"] == "binary" and info["documents"] == 4

    with_documents = run_cli("ensure-index", "--repin", env={"SEARCH_VECTOR_COMPRESSION": "none"})
    assert with_documents.exit_code == 3 and "never re-created" in with_documents.stderr
    assert "set SEARCH_VECTOR_COMPRESSION=binary to use it as it is" in with_documents.stderr
    index = local_index(tmp_path / "imgsearch-data")
    assert index.count() == 4 and index.schema.compression == "binary"


def test_ensure_index_repin_re_creates_an_empty_index_with_the_compression_asked_for(run_cli, tmp_path) -> None:
    assert run_cli("ensure-index", env={"SEARCH_VECTOR_COMPRESSION": "none"}).exit_code == 0

    recreated = run_cli("ensure-index", "--repin", env={"SEARCH_VECTOR_COMPRESSION": "scalar"})

    assert recreated.exit_code == 0, recreated.output
    assert "with scalar (int8) quantization" in recreated.stdout
    assert local_index(tmp_path / "imgsearch-data").schema.compression == "scalar"


def test_a_compression_outside_the_three_exits_2_naming_the_setting(run_cli, tmp_path) -> None:
    result = run_cli("ensure-index", env={"SEARCH_VECTOR_COMPRESSION": "zip"})

    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "SEARCH_VECTOR_COMPRESSION='zip'" in result.stderr and "'none', 'scalar' or 'binary'" in result.stderr
    assert not (tmp_path / "imgsearch-data" / "images").exists()


def test_index_and_search_through_the_vision_rest_api(run_cli, small_folder, tmp_path, vision_server) -> None:
    env = {
        "VISION_ENDPOINT": vision_server.url,
        "VISION_KEY": vision_server.key,
        "VISION_MODEL_VERSION": OFFLINE_MULTILINGUAL,
    }
    calls_before = len(vision_server.requests)

    summary = index_json(run_cli, small_folder, env=env)
    hits = hits_of(run_cli("search", "a dog", "-k", "1", "--json", env=env))

    assert summary["indexed"] == 4
    assert name_of(hits[0]) == "dog.jpg"
    # 4 images + 1 query, each over HTTP, + 1 question to the endpoint about its model version
    assert len(vision_server.requests) - calls_before == 6


def test_a_query_the_vision_service_refuses_is_a_bad_argument(run_cli, small_folder, vision_server) -> None:
    env = {
        "VISION_ENDPOINT": vision_server.url,
        "VISION_KEY": vision_server.key,
        "VISION_MODEL_VERSION": OFFLINE_MULTILINGUAL,
    }
    index_json(run_cli, small_folder, env=env)

    # 80 pieces of a script written without spaces: how Azure counts their words is not
    # documented, so the client lets the service judge, and the stand-in (counting by
    # whitespace) refuses it with a 400: the user's argument is wrong, not the service.
    result = run_cli("search", " ".join(["猫"] * 80), env=env)

    assert result.exit_code == 2, result.output
    assert "refused the query" in result.stderr and "Traceback" not in result.output


def test_a_wrong_vision_key_stops_the_run_with_one_clear_line(run_cli, small_folder, tmp_path, vision_server) -> None:
    env = {
        "VISION_ENDPOINT": vision_server.url,
        "VISION_KEY": "wrong-key",
        "VISION_MODEL_VERSION": OFFLINE_MULTILINGUAL,
    }

    result = run_cli("index", small_folder, env=env)

    assert result.exit_code == 2  # a setting to fix, like any configuration error
    assert result.stderr.startswith("error: ") and "401" in result.stderr
    assert "wrong-key" not in result.output and "Traceback" not in result.output
    assert not (tmp_path / "imgsearch-data" / "images").exists()  # refused before anything was created


# --- configuration errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "variable, value",
    [
        ("VISION_MODEL_VERSION", "2099-01-01"),
        ("VISION_TIMEOUT_SECONDS", "-1"),
        ("SEARCH_INDEX_NAME", "Not A Valid Name"),
    ],
)
def test_a_bad_setting_is_named_in_one_line_with_exit_code_2(run_cli, small_folder, variable, value) -> None:
    result = run_cli("index", small_folder, env={variable: value})

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and variable in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- the console script, a real process ------------------------------------------------------


def run_process(*args, env: dict | None = None, **options) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in clean_env()}
    full_env.update(env or {})
    return subprocess.run([str(a) for a in args], env=full_env, capture_output=True, text=True, timeout=120, **options)


def test_the_console_script_and_python_m_run_the_cli(indexed_samples) -> None:
    script = run_process(BIN / "imgsearch", "info", "--json", env={"IMGSEARCH_DATA_DIR": str(indexed_samples.data_dir)})
    module = run_process(sys.executable, "-m", "indexer", "--help")

    assert script.returncode == 0, script.stderr
    assert json.loads(script.stdout)["documents"] == len(indexed_samples.images)
    assert module.returncode == 0 and "index" in module.stdout and "search" in module.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_vision_takes_its_keys_from_the_environment(tmp_path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "imgsearch"), "serve-vision", "--port", str(port), "--log-level", "warning"],
        env={**{k: v for k, v in os.environ.items() if k not in clean_env()}, "VISION_SERVER_KEYS": "k-one, k-two"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = (
        f"http://127.0.0.1:{port}/computervision/retrieval:vectorizeText?api-version=2024-02-01"
        f"&model-version={OFFLINE_MULTILINGUAL}"
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # wait until the server listens (startup imports take a few seconds)
            try:
                unauthenticated = requests.post(url, json={"text": ""}, timeout=5)
                break
            except requests.ConnectionError:
                assert process.poll() is None, process.stderr.read()
                assert time.monotonic() < deadline, "serve-vision did not start"
                time.sleep(0.2)
        with_second_key = requests.post(
            url, json={"text": ""}, headers={"Ocp-Apim-Subscription-Key": "k-two"}, timeout=5
        )
    finally:
        process.terminate()
        process.wait(timeout=20)
    banner = process.stderr.read()

    assert unauthenticated.status_code == 401
    # Past authentication, the empty text is refused by validation: the key was accepted.
    assert with_second_key.status_code == 400
    assert "2 key(s)" in banner and "k-one" not in banner and "k-two" not in banner


# --- against the Azure AI Search stand-in, through the real SDK ----------------------------------


def test_index_search_and_reindex_against_azure_ai_search(
    run_cli, small_folder, search_double, search_index_name
) -> None:
    url, key = search_double.endpoint, search_double.api_key
    env = {"SEARCH_ENDPOINT": url, "SEARCH_KEY": key, "SEARCH_INDEX_NAME": search_index_name}

    first = index_json(run_cli, small_folder, env=env)
    hits = hits_of(run_cli("search", "a dog", "-k", "2", "--json", env=env))
    (small_folder / "coffee.jpg").unlink()
    second = index_json(run_cli, small_folder, env=env)
    info = json.loads(run_cli("info", "--json", env=env).stdout)

    assert first["indexed"] == 4
    assert name_of(hits[0]) == "dog.jpg" and hits[0]["fields"]["container"] == FolderSource(small_folder).label
    assert (second["indexed"], second["unchanged"], second["removed"]) == (0, 3, 1)
    assert info["backend"] == "azure" and info["location"] == url and info["documents"] == 3
    assert info["model_version"] == OFFLINE_MULTILINGUAL
    assert key not in json.dumps(info)


def test_verbose_logging_shows_debug_messages_but_never_a_key(
    run_cli, small_folder, search_double, search_index_name, restore_logging
) -> None:
    (small_folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    env = {
        "SEARCH_ENDPOINT": search_double.endpoint,
        "SEARCH_KEY": search_double.api_key,
        "SEARCH_INDEX_NAME": search_index_name,
    }

    result = run_cli("-vv", "index", small_folder, env=env)

    assert result.exit_code == 0, result.output
    assert "DEBUG indexer.indexing.bulk: not indexed:" in result.stderr and "corrupt.jpg" in result.stderr
    assert "azure" in result.stderr  # the SDK's request logs are on
    assert search_double.api_key not in result.output


def test_files_that_are_no_images_are_counted_and_those_named_like_images_listed(run_cli, small_folder) -> None:
    (small_folder / "notes.txt").write_text("shopping list")
    (small_folder / "layers.psd").write_bytes(b"8BPS\x00\x01" + bytes(20))

    result = run_cli("index", small_folder)
    as_json = json.loads(run_cli("index", small_folder, "--json").stdout)

    assert result.exit_code == 0
    assert "layers.psd: Photoshop (PSD) is not a format read here" in result.stderr
    assert "notes.txt" not in result.stderr  # counted, not listed: a folder of photos has many such files
    assert "1 skipped" in result.stdout and "1 other files are not images" in result.stdout
    assert sorted(entry["path"] for entry in as_json["not_images"]) == ["layers.psd", "notes.txt"]


def test_a_folder_of_real_photos_is_indexed_in_full_with_productions_configuration(
    run_cli, real_photos, tmp_path, vision_server
) -> None:
    """HEIC, AVIF, a scan over 20 MB and an 18,000 px panorama, which the Vision stand-in
    refuses as Azure does, are sent as renditions; the others as they are. Each document
    describes the original as displayed, and a text query finds the HEIC photo by its content."""
    folder, expected = real_photos
    env = {"VISION_ENDPOINT": vision_server.url, "VISION_KEY": vision_server.key, "VISION_MODEL_VERSION": "2023-04-15"}

    result = run_cli("index", folder, "--json", env=env)

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["indexed"] == len(expected) and not summary["failed"], summary
    index = local_index(tmp_path / "imgsearch-data")
    documents = {doc["file_name"]: doc for doc in map(index.get, index.keys_with_hashes())}
    described = {name: {f: doc[f] for f in ("content_type", "width", "height")} for name, doc in documents.items()}
    assert described == expected
    [(name, subject)] = REAL_PHOTO_SUBJECTS.items()
    hits = json.loads(run_cli("search", subject, "-k", "1", "--json", env=env).stdout)
    assert Path(hits[0]["fields"]["blob_path"]).name == name
    # The stand-in itself still refuses the HEIC, as Azure does: the product made it acceptable.
    refused = requests.post(
        f"{vision_server.url}/computervision/retrieval:vectorizeImage",
        params={"api-version": "2024-02-01", "model-version": "2023-04-15"},
        headers={"Ocp-Apim-Subscription-Key": vision_server.key, "Content-Type": "application/octet-stream"},
        data=(folder / name).read_bytes(),
        timeout=30,
    )
    assert refused.status_code == 400, refused.text
