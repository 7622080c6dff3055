"""The query module over the real local index, with a small deterministic vectorizer.

The vectorizer below is a stand-in on purpose: what is under test here is the query logic
(option checks, pin checks, filters, dispatch of bytes/paths/URLs), not a model. It embeds a
text as the sum of fixed random word vectors, so texts sharing words are similar, and treats
image bytes as the UTF-8 description of the picture.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from indexer.backends.numpy_index import NumpyIndex
from indexer.backends.schema_rules import InvalidQueryError
from indexer.documents import Document, Embedding
from indexer.errors import IndexNotFoundError, InputLimitError, ModelVersionMismatchError
from indexer.filters import Condition, FilterError
from indexer.limits import MAX_SOURCE_BYTES
from indexer.model_versions import OFFLINE_ENGLISH, OFFLINE_MULTILINGUAL
from indexer.query import search_image, search_text, search_vector

MODEL = OFFLINE_MULTILINGUAL
DIMS = 512


def picture(words: str) -> bytes:
    """A small PNG that carries ``words`` (what the fake vectorizer sees in it)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("words", words)
    out = io.BytesIO()
    Image.new("RGB", (16, 16)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def word_vector(word: str, dims: int) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(word.encode())).normal(size=dims)


class WordVectorizer:
    """Implements indexer.vectorizers.Vectorizer; records every call (each would be a paid
    Vision call in production)."""

    def __init__(self, model_version: str = MODEL, dims: int = DIMS) -> None:
        self.model_version, self.dims = model_version, dims
        self.calls: list[tuple[str, object]] = []

    def embed(self, text: str) -> Embedding:
        vector = sum(word_vector(w, self.dims) for w in text.lower().split())
        return Embedding(np.asarray(vector, dtype=np.float32), self.model_version)

    def vectorize_text(self, text: str) -> Embedding:
        self.calls.append(("text", text))
        return self.embed(text)

    def vectorize_image(self, image: bytes) -> Embedding:
        self.calls.append(("image", image))
        with Image.open(io.BytesIO(image)) as picture:
            return self.embed(picture.text["words"])

    def vectorize_image_url(self, url: str) -> Embedding:
        self.calls.append(("url", url))
        return self.embed(url.rsplit("/", 1)[-1].split(".")[0].replace("-", " "))


CATALOGUE = {
    "red-car": ("red car", 500),
    "blue-car": ("blue car", 1500),
    "red-apple": ("red apple", 2500),
    "green-tree": ("green tree", 800),
    "old-bicycle": ("old bicycle", 3000),
}


@pytest.fixture
def index(local_index) -> NumpyIndex:
    vectorizer = WordVectorizer()
    local_index.upsert(
        [
            Document(
                key, vectorizer.embed(text), {"source": f"photos/{key}.jpg", "size_bytes": size, "tags": text.split()}
            )
            for key, (text, size) in CATALOGUE.items()
        ]
    )
    return local_index


@pytest.fixture
def vectorizer() -> WordVectorizer:
    return WordVectorizer()


class RecordingBackend:
    """The real index, with a record of which methods the query module called."""

    def __init__(self, backend: NumpyIndex) -> None:
        self.backend, self.calls = backend, []

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(self.backend, name)


def keys(hits) -> list[str]:
    return [h.key for h in hits]


def test_search_text_ranks_the_matching_image_first(index, vectorizer):
    hits = search_text("red car", vectorizer=vectorizer, backend=index, k=3)
    assert keys(hits)[0] == "red-car"
    assert set(keys(hits)[1:]) == {"blue-car", "red-apple"}  # one shared word each
    assert hits[0].source == "photos/red-car.jpg"
    assert hits[0].score > hits[1].score > hits[2].score
    assert vectorizer.calls == [("text", "red car")]


def test_search_image_with_bytes(index, vectorizer):
    assert keys(search_image(picture("green tree"), vectorizer=vectorizer, backend=index, k=1)) == ["green-tree"]
    assert vectorizer.calls == [("image", picture("green tree"))]  # byte for byte


@pytest.mark.parametrize("as_path", [str, Path])
def test_search_image_with_a_file_path(index, vectorizer, tmp_path, as_path):
    example = tmp_path / "example.jpg"
    example.write_bytes(picture("red apple"))
    assert keys(search_image(as_path(example), vectorizer=vectorizer, backend=index, k=1)) == ["red-apple"]
    assert vectorizer.calls == [("image", picture("red apple"))]


def test_search_image_with_a_url_lets_the_service_fetch_it(index, vectorizer):
    url = "https://example.invalid/pictures/blue-car.jpg"
    assert keys(search_image(url, vectorizer=vectorizer, backend=index, k=1)) == ["blue-car"]
    assert vectorizer.calls == [("url", url)]


def test_search_image_with_neither_a_url_nor_a_file(index, vectorizer, tmp_path):
    with pytest.raises(InvalidQueryError, match="nowhere.jpg"):
        search_image(str(tmp_path / "nowhere.jpg"), vectorizer=vectorizer, backend=index)
    with pytest.raises(InvalidQueryError):
        search_image(12345, vectorizer=vectorizer, backend=index)
    assert vectorizer.calls == []


def test_search_image_refuses_a_huge_file_before_reading_it(index, vectorizer, tmp_path):
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as file:
        file.truncate(MAX_SOURCE_BYTES)  # sparse: costs no disk space
    with pytest.raises(InputLimitError):
        search_image(huge, vectorizer=vectorizer, backend=index)
    assert vectorizer.calls == []


def test_search_vector_with_an_embedding_or_an_array(index, vectorizer):
    embedding = vectorizer.embed("old bicycle")
    by_embedding = search_vector(embedding, backend=index, k=2)
    assert keys(by_embedding)[0] == "old-bicycle"
    by_array = search_vector(embedding.vector, backend=index, k=2, model_version=MODEL)
    by_list = search_vector(embedding.vector.tolist(), backend=index, k=2, model_version=MODEL)
    assert [(h.key, h.score) for h in by_array] == [(h.key, h.score) for h in by_embedding]
    assert [(h.key, h.score) for h in by_list] == [(h.key, h.score) for h in by_embedding]


def test_a_bare_vector_must_say_its_model_version(index, vectorizer):
    vector = vectorizer.embed("red car").vector
    with pytest.raises(InvalidQueryError, match="model_version"):
        search_vector(vector, backend=index)
    with pytest.raises(ModelVersionMismatchError):
        search_vector(vector, backend=index, model_version=OFFLINE_ENGLISH)
    with pytest.raises(ModelVersionMismatchError):
        search_vector(vector[:384], backend=index, model_version=MODEL)
    with pytest.raises(ModelVersionMismatchError):  # an embedding and a claim that disagree
        search_vector(vectorizer.embed("red car"), backend=index, model_version=OFFLINE_ENGLISH)
    with pytest.raises(InvalidQueryError, match="one-dimensional"):
        search_vector(np.stack([vector, vector]), backend=index, model_version=MODEL)


@pytest.mark.parametrize(
    "other",
    [WordVectorizer(OFFLINE_ENGLISH, DIMS), WordVectorizer(MODEL, 384)],
    ids=["other-model-version", "other-dimension-count"],
)
def test_a_vectorizer_with_another_pin_cannot_query(index, other, tmp_path):
    backend = RecordingBackend(index)
    with pytest.raises(ModelVersionMismatchError):
        search_text("red car", vectorizer=other, backend=backend)
    with pytest.raises(ModelVersionMismatchError):
        search_image(picture("red car"), vectorizer=other, backend=backend)
    assert "search" not in backend.calls and "get_pin" in backend.calls


def test_filters_as_strings_and_conditions(index, vectorizer):
    big = search_text("car", vectorizer=vectorizer, backend=index, k=10, filters=["size_bytes>=1000"])
    assert set(keys(big)) == {"blue-car", "red-apple", "old-bicycle"}
    mixed = search_text(
        "car", vectorizer=vectorizer, backend=index, k=10, filters=["size_bytes>=1000", Condition("tags", "eq", "car")]
    )
    assert keys(mixed) == ["blue-car"]
    single = search_text("car", vectorizer=vectorizer, backend=index, k=10, filters="tags=red")
    assert set(keys(single)) == {"red-car", "red-apple"}
    quoted = search_vector(vectorizer.embed("tree"), backend=index, filters=["tags = 'green'"])
    assert keys(quoted) == ["green-tree"]


@pytest.mark.parametrize("filters", [["size_bytes~1000"], ["=1000"], [42]])
def test_unreadable_filters_fail_before_any_vectorizing(index, vectorizer, filters):
    with pytest.raises(FilterError):
        search_text("car", vectorizer=vectorizer, backend=index, filters=filters)
    assert vectorizer.calls == []


def test_a_filter_on_an_unknown_field_names_it(index, vectorizer):
    with pytest.raises(FilterError, match="colour"):
        search_text("car", vectorizer=vectorizer, backend=index, filters=["colour=red"])


@pytest.mark.parametrize(
    ("k", "threshold"),
    [
        (0, None),
        (1001, None),
        (-3, None),
        (2.5, None),
        ("10", None),
        (True, None),
        (10, 1.01),
        (10, -1.5),
        (10, "0.5"),
        (10, float("nan")),
    ],
)
def test_k_and_threshold_are_checked_before_any_vectorizing(index, vectorizer, k, threshold):
    for search in (
        lambda: search_text("car", vectorizer=vectorizer, backend=index, k=k, threshold=threshold),
        lambda: search_image(picture("car"), vectorizer=vectorizer, backend=index, k=k, threshold=threshold),
        lambda: search_vector(vectorizer.embed("car"), backend=index, k=k, threshold=threshold),
    ):
        with pytest.raises(InvalidQueryError, match="k must|threshold"):
            search()
    assert vectorizer.calls == []


def test_k_and_threshold_limit_the_results(index, vectorizer):
    assert len(search_text("car", vectorizer=vectorizer, backend=index, k=1000)) == len(CATALOGUE)
    assert len(search_text("car", vectorizer=vectorizer, backend=index, k=2)) == 2
    exact = search_text("green tree", vectorizer=vectorizer, backend=index, k=10, threshold=0.99)
    assert keys(exact) == ["green-tree"]


def test_select_reaches_the_backend(index, vectorizer):
    hit = search_text("red car", vectorizer=vectorizer, backend=index, k=1, select=["size_bytes"])[0]
    assert hit.fields == {"size_bytes": 500}


def test_a_missing_index_fails_before_any_vectorizing(tmp_path, vectorizer):
    missing = NumpyIndex(tmp_path, "nothing-here")
    with pytest.raises(IndexNotFoundError):
        search_text("red car", vectorizer=vectorizer, backend=missing)
    with pytest.raises(IndexNotFoundError):
        search_image(picture("red car"), vectorizer=vectorizer, backend=missing)
    assert vectorizer.calls == []


class KnownVersionVectorizer(WordVectorizer):
    """Says before any call which model version its vectors will report, as the offline model does."""

    @property
    def reported_model_version(self) -> str:
        return self.model_version


def test_a_vectorizer_that_knows_its_version_is_refused_before_it_is_called(index):
    other = KnownVersionVectorizer(OFFLINE_ENGLISH, DIMS)
    with pytest.raises(
        ModelVersionMismatchError, match=f"the vectorizer makes vectors with model version '{OFFLINE_ENGLISH}'"
    ):
        search_text("red car", vectorizer=other, backend=index)
    with pytest.raises(ModelVersionMismatchError, match=OFFLINE_ENGLISH):
        search_image(picture("red car"), vectorizer=other, backend=index)
    assert other.calls == []  # no model loaded, no paid call made
    same = KnownVersionVectorizer(MODEL, DIMS)
    assert keys(search_text("red car", vectorizer=same, backend=index, k=1)) == ["red-car"]


def test_the_offline_model_names_its_version_without_loading_anything(index):
    from indexer.vectorizers.offline.vectorizer import OfflineVectorizer

    english = OfflineVectorizer(OFFLINE_ENGLISH)
    with pytest.raises(ModelVersionMismatchError, match=f"pinned to '{MODEL}'"):
        search_text("red car", vectorizer=english, backend=index)
    # Loading is what made a mismatched query take seconds; nothing may have been loaded.
    assert english._text_encoder is None and english._classifier is None
