"""Search the index with text, an example image, or a vector, over any backend.

Each function checks its options before any paid Vision call, vectorizes, checks the embedding
against the index's pin (model version and dimension count), and only then searches: a vector
of another model would give plausible, meaningless scores. Scores are cosine similarities;
filters are ``indexer.filters.Condition`` objects or strings such as ``"size_bytes>=1000"``.
(design: docs/design.md#the-pinned-model-version)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from indexer.backends.base import IndexBackend
from indexer.backends.schema_rules import check_filter_fields, check_k, check_threshold
from indexer.documents import Embedding, Hit, IndexPin
from indexer.errors import ConfigurationError, FilterError, InvalidQueryError, ModelVersionMismatchError
from indexer.filters import Condition, parse_condition
from indexer.limits import MAX_SOURCE_BYTES, check_image_size, check_text
from indexer.renditions import for_vision
from indexer.vectorizers import Vectorizer

FilterSpec = Condition | str


def search_vector(
    vector: Embedding | np.ndarray | Sequence[float],
    *,
    backend: IndexBackend,
    k: int = 10,
    threshold: float | None = None,
    filters: Iterable[FilterSpec] = (),
    select: Sequence[str] | None = None,
    model_version: str | None = None,
) -> list[Hit]:
    """Search with a vector you already have.

    An ``Embedding`` carries its model version. A bare array does not, and nothing in its
    numbers tells which model made it, so ``model_version`` is then required: name the
    model that produced the vector (it must equal the index's pin). We do not silently
    assume the index's own version, because a wrong guess gives meaningless results with
    no error.
    """
    conditions = _conditions(filters)
    k, threshold = check_k(k), check_threshold(threshold)
    if isinstance(vector, Embedding):
        if model_version is not None and model_version != vector.model_version:
            raise ModelVersionMismatchError(
                f"the embedding was made by model version {vector.model_version!r}, not {model_version!r}",
                expected=model_version,
                actual=vector.model_version,
            )
        embedding = vector
    else:
        if model_version is None:
            raise InvalidQueryError(
                "a bare vector does not say which model made it; pass model_version=<the model version that "
                "produced it> (it must match the index's pin), or pass an Embedding"
            )
        array = np.asarray(vector, dtype=np.float32)
        if array.ndim != 1:
            raise InvalidQueryError(f"the query vector must be one-dimensional, got shape {array.shape}")
        embedding = Embedding(array, model_version)
    return _search(
        embedding,
        _pin_checking_fields(backend, conditions),
        backend=backend,
        k=k,
        threshold=threshold,
        conditions=conditions,
        select=select,
    )


def search_text(
    text: str,
    *,
    vectorizer: Vectorizer | None,
    backend: IndexBackend,
    k: int = 10,
    threshold: float | None = None,
    filters: Iterable[FilterSpec] = (),
    select: Sequence[str] | None = None,
    vectorize: Literal["here", "service"] = "here",
) -> list[Hit]:
    """Search images by a description (1 to 70 words, in any language the model knows).

    ``vectorize="here"`` vectorizes the text with ``vectorizer`` and checks the vector against
    the pin before searching. ``vectorize="service"`` sends the text itself to Azure AI Search
    (``VectorizableTextQuery``), whose Web API vectorizer calls this project's ``/api/vectorize``,
    which checks the pin there: what any app, in any language, can do with the index alone."""
    conditions = _conditions(filters)
    k, threshold = check_k(k), check_threshold(threshold)
    pin = _pin_checking_fields(backend, conditions)  # before a paid Vision call
    if vectorize == "service":
        by_text = getattr(backend, "search_by_text", None)
        if by_text is None:
            raise ConfigurationError(
                "the search service vectorizes queries only in Azure AI Search (SEARCH_ENDPOINT) with a vectorizer "
                "(SEARCH_VECTORIZER_URI); the local index is searched with vectors made here"
            )
        check_text(text, word_check="service")  # an empty text is refused before any call
        return list(by_text(text, k=k, threshold=threshold, filters=conditions, select=select))
    if vectorize != "here":
        raise InvalidQueryError(f"vectorize must be 'here' or 'service', not {vectorize!r}")
    if vectorizer is None:
        raise InvalidQueryError("a vectorizer is needed to vectorize the query here")
    _check_known_version(vectorizer, pin)
    embedding = vectorizer.vectorize_text(text)
    return _search(embedding, pin, backend=backend, k=k, threshold=threshold, conditions=conditions, select=select)


def search_image(
    image: bytes | str | os.PathLike,
    *,
    vectorizer: Vectorizer,
    backend: IndexBackend,
    k: int = 10,
    threshold: float | None = None,
    filters: Iterable[FilterSpec] = (),
    select: Sequence[str] | None = None,
) -> list[Hit]:
    """Search images similar to an example: its bytes, an http(s) URL the Vision service
    fetches, or the path of a local file.

    A path is read from this machine's disk: an edge that takes queries from remote users
    (an HTTP endpoint) must pass bytes or URLs, never a user-supplied path.
    """
    conditions = _conditions(filters)
    k, threshold = check_k(k), check_threshold(threshold)
    pin = _pin_checking_fields(backend, conditions)
    _check_known_version(vectorizer, pin)
    if isinstance(image, (bytes, bytearray, memoryview)):
        embedding = vectorizer.vectorize_image(for_vision(bytes(image)).data)
    elif isinstance(image, str) and image.strip().lower().startswith(("http://", "https://")):
        embedding = vectorizer.vectorize_image_url(image.strip())
    elif isinstance(image, (str, os.PathLike)):
        embedding = vectorizer.vectorize_image(for_vision(_read_image_file(Path(image))).data)
    else:
        raise InvalidQueryError(
            f"the example image must be bytes, an http(s) URL or a file path, not {type(image).__name__}"
        )
    return _search(embedding, pin, backend=backend, k=k, threshold=threshold, conditions=conditions, select=select)


def _pin_checking_fields(backend: IndexBackend, conditions: list[Condition]) -> IndexPin:
    """The index's pin (a missing index fails here), after refusing filters on fields the
    index cannot filter, by name, against the live index's own definition."""
    pin = backend.get_pin()
    if conditions:
        check_filter_fields(backend.schema, conditions)
    return pin


def _check_known_version(vectorizer: Vectorizer, pin: IndexPin) -> None:
    """A vectorizer that knows before any call which model version its vectors will report
    (``reported_model_version``: the offline model, whose name is its own) is checked against
    the pin first, so a mismatch is named at once rather than after loading a model. Azure AI
    Vision says which version answered only in its answer; that one is checked in ``_search``."""
    known = getattr(vectorizer, "reported_model_version", None)
    if isinstance(known, str):
        pin.check_version(known, action="search")


def _search(
    embedding: Embedding,
    pin: IndexPin,
    *,
    backend: IndexBackend,
    k: int,
    threshold: float | None,
    conditions: list[Condition],
    select: Sequence[str] | None,
) -> list[Hit]:
    pin.check(embedding, action="search")
    return backend.search(embedding, k=k, threshold=threshold, filters=conditions, select=select)


def _conditions(filters: Iterable[FilterSpec] | FilterSpec | None) -> list[Condition]:
    if filters is None:
        return []
    if isinstance(filters, (str, Condition)):  # one filter given on its own
        filters = [filters]
    conditions = []
    for item in filters:
        if isinstance(item, Condition):
            conditions.append(item)
        elif isinstance(item, str):
            conditions.append(parse_condition(item))
        else:
            raise FilterError(f"a filter must be a Condition or a string like 'size_bytes>=1000', got {item!r}")
    return conditions


def _read_image_file(path: Path) -> bytes:
    if not path.is_file():
        raise InvalidQueryError(f"the example image {str(path)!r} is neither an http(s) URL nor an existing file")
    check_image_size(path.stat().st_size, max_bytes=MAX_SOURCE_BYTES)  # before reading it into memory
    return path.read_bytes()
