"""End-to-end tests run against a search double that is as slow to show writes as Azure is.

Azure AI Search makes a document searchable "a few seconds after" it answers the indexing
request with 200 (search-howto-reindex, "Responses"). The contract tests keep the double's
visibility delay at 0 for speed; here every index the ``search_index_name`` fixture makes
gets ``VISIBILITY_DELAY_SECONDS`` (``imgsearch dev`` runs its double with 1 s too), so a flow
that reads right after it writes (the content-hash skip, counts, reconcile's listing, "index
then query") meets the delay it meets on Azure. A test that must see its own write waits for
it with ``eventually`` (a bounded poll), as an application on Azure would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fixtures.search_double import RunningSearchDouble

# One second: Azure's "a few seconds" shortened for test time, long enough that every read in
# the same breath as its write misses it. IMGSEARCH_TEST_VISIBILITY_DELAY overrides it.
VISIBILITY_DELAY_SECONDS = float(os.environ.get("IMGSEARCH_TEST_VISIBILITY_DELAY", "1.0"))


@pytest.fixture
def search_index_name(search_index_name: str, search_double: RunningSearchDouble) -> Iterator[str]:
    """The session double's fresh index for this test, with Azure's indexing latency."""
    search_double.service.set_visibility_delay(search_index_name, VISIBILITY_DELAY_SECONDS)
    yield search_index_name
