"""Vector compression on the real search service (``make test-live``; skipped without a deployment).

The search double checks compression definitions but answers every query exactly, from the
full-precision vectors (standins/FIDELITY.md Q16). These tests settle on Azure what it cannot
show: that a compressed index finds the top 10 an exhaustive query finds, that the compression
``ensure-index`` sends comes back as sent (D20), and that Azure refuses what the double refuses
(D18, D21). Each makes indexes named ``<index>-live-<kind>-...`` and deletes them.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from indexer.schema import VECTOR_FIELD, load_schema
from indexer.vector_compression import compression_definition
from tests.live.conftest import Deployment

pytestmark = pytest.mark.live
PROFILE = "image-vector-profile"
# Documents in clusters, so that each query's true top 10 is its own cluster, well apart from the rest.
CLUSTERS, PER_CLUSTER, QUERIES, K = 40, 10, 20, 10
MIN_RECALL = 0.9  # mean share of the exhaustive top 10 the compressed index returns


def compressed_definition(name: str, compression: str, model_version: str) -> dict[str, Any]:
    """The project's index definition with ``compression``, exactly as ``ensure-index`` makes it."""
    return copy.deepcopy(load_schema(model_version).with_compression(compression).named(name))


class LiveIndexes:
    """Indexes a test makes on the deployment's search service (deleted after it)."""

    def __init__(self, deployment: Deployment, settings: Any) -> None:
        from azure.search.documents.indexes import SearchIndexClient

        from indexer.services import build_credential

        self.prefix = f"{deployment.values['AZURE_SEARCH_INDEX_NAME']}-live"
        self.model_version = deployment.values.get("AZURE_VISION_MODEL_VERSION", "2023-04-15")
        self.endpoint, self.credential = settings.search_endpoint, build_credential("", settings)
        self.client = SearchIndexClient(self.endpoint, self.credential)
        self.made: list[str] = []

    def definition(self, compression: str) -> dict[str, Any]:
        name = f"{self.prefix}-{compression}-{uuid.uuid4().hex[:8]}"
        self.made.append(name)  # before the request: an unexpected success is deleted too
        return compressed_definition(name, compression, self.model_version)

    def search_client(self, name: str) -> Any:
        from azure.search.documents import SearchClient

        return SearchClient(self.endpoint, name, self.credential)


@pytest.fixture
def live_indexes(deployment: Deployment, live_settings: Any) -> Iterator[LiveIndexes]:
    from azure.core.exceptions import ResourceNotFoundError

    indexes = LiveIndexes(deployment, live_settings)
    yield indexes
    for name in indexes.made:
        try:
            indexes.client.delete_index(name)
        except ResourceNotFoundError:
            pass


def clustered_vectors(dimensions: int) -> tuple[np.ndarray, np.ndarray]:
    """Documents (CLUSTERS x PER_CLUSTER) and one query per cluster for the first QUERIES clusters."""
    rng = np.random.default_rng(20261207)
    centres = rng.normal(size=(CLUSTERS, dimensions))
    documents = np.repeat(centres, PER_CLUSTER, axis=0) + rng.normal(size=(CLUSTERS * PER_CLUSTER, dimensions))
    queries = centres[:QUERIES] + rng.normal(size=(QUERIES, dimensions))
    return documents.astype(np.float32), queries.astype(np.float32)


@pytest.mark.parametrize("compression", ["scalar", "binary"])
def test_a_compressed_index_finds_the_top_10_an_exhaustive_query_finds(live_indexes, compression):
    # FIDELITY.md Q16: the double answers exactly; Azure searches the quantized vectors and rescores
    # an oversampled candidate set with the preserved originals. D20: the compression comes back as sent.
    from azure.search.documents.indexes.models import SearchIndex
    from azure.search.documents.models import VectorizedQuery

    definition = live_indexes.definition(compression)
    created = live_indexes.client.create_index(SearchIndex(definition))
    (written,) = created.as_dict()["vectorSearch"]["compressions"]
    sent = compression_definition(compression)
    assert {k: written.get(k) for k in sent} == sent and written.get("truncationDimension") is None, written

    dimensions = next(f["dimensions"] for f in definition["fields"] if f["name"] == VECTOR_FIELD)
    documents, queries = clustered_vectors(dimensions)
    search = live_indexes.search_client(definition["name"])
    rows = [{"id": f"d{i:04d}", VECTOR_FIELD: v.tolist()} for i, v in enumerate(documents)]
    for start in range(0, len(rows), 100):
        assert all(r.succeeded for r in search.upload_documents(rows[start : start + 100]))
    deadline = time.monotonic() + 120
    while search.get_document_count() < len(rows):
        assert time.monotonic() < deadline, "the documents did not become searchable within 120 s"
        time.sleep(2)

    def top(query: np.ndarray, exhaustive: bool) -> set[str]:
        vector = VectorizedQuery(
            vector=query.tolist(), k_nearest_neighbors=K, fields=VECTOR_FIELD, exhaustive=exhaustive
        )
        return {hit["id"] for hit in search.search(search_text=None, vector_queries=[vector], select=["id"], top=K)}

    recalls = [len(top(q, False) & top(q, True)) / K for q in queries]
    assert np.mean(recalls) >= MIN_RECALL, f"{compression}: recall@{K} against exhaustive {np.mean(recalls):.3f}"


def test_azure_refuses_what_the_double_refuses_for_compressions(live_indexes):
    # FIDELITY.md D21: the compression an existing vector field was indexed with cannot change;
    # D18: rescoring scalar-quantized vectors needs the originals.
    from azure.core.exceptions import HttpResponseError
    from azure.search.documents.indexes.models import SearchIndex

    definition = live_indexes.definition("scalar")
    live_indexes.client.create_index(SearchIndex(definition))
    kind_changed = copy.deepcopy(definition)
    kind_changed["vectorSearch"]["compressions"] = [{**compression_definition("binary"), "name": "image-scalar"}]
    storage_changed = copy.deepcopy(definition)
    storage_changed["vectorSearch"]["compressions"][0]["rescoringOptions"] = {
        "enableRescoring": False,
        "rescoreStorageMethod": "discardOriginals",
    }
    scalar_without_originals = live_indexes.definition("scalar")
    scalar_without_originals["vectorSearch"]["compressions"][0]["rescoringOptions"]["rescoreStorageMethod"] = (
        "discardOriginals"
    )
    for refused in (kind_changed, storage_changed, scalar_without_originals):
        with pytest.raises(HttpResponseError) as raised:
            live_indexes.client.create_or_update_index(SearchIndex(refused))
        assert raised.value.status_code == 400, raised.value.message

    retuned = copy.deepcopy(definition)  # query-time rescoring may change
    retuned["vectorSearch"]["compressions"][0]["rescoringOptions"]["defaultOversampling"] = 3.0
    live_indexes.client.create_or_update_index(SearchIndex(retuned))
