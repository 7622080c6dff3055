"""The official azure-search-documents samples' flows, inside the double's subset, through the real
SDK over HTTP.

The samples themselves (sdk/search/azure-search-documents/samples in Azure/azure-sdk-for-python,
MIT) cannot run here unchanged: the revisions that can be read offline target other SDK releases
than the installed azure-search-documents 12 (``VectorizedQuery(k=...)`` there is a TypeError
here), need a pre-built "hotels-sample-index" with complex and geography fields, call an
embedding service, or use features outside the double's subset (semantic configuration,
full-text and hybrid queries), and nothing may be fetched at test time. So each test below makes
the same SDK calls, in the same order, as the sample it names, on a hotels index built from the
fields the double serves; where a sample uses a feature the double does not serve, the test
checks that the double refuses it with its Azure-shaped "not implemented by this stand-in" 400.

- sample_get_document.py            -> test_get_document
- sample_index_crud(_operations).py -> test_index_crud_without_complex_fields
- sample_documents_crud.py /
  sample_crud_operations.py         -> test_documents_crud
- sample_(documents_)buffered_sender.py -> test_buffered_sender
- sample_filter_query.py /
  sample_query_filter.py            -> test_filter_query
- sample_vector_search.py /
  sample_query_vector.py            -> test_vector_query
"""

from __future__ import annotations

import numpy as np
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.search.documents import SearchClient, SearchIndexingBufferedSender
from azure.search.documents.indexes import SearchIndexClient
from azure.search.documents.indexes.models import (
    ComplexField,
    HnswAlgorithmConfiguration,
    SearchableField,
    SearchField,
    SearchFieldDataType,
    SearchIndex,
    SimpleField,
    VectorSearch,
    VectorSearchProfile,
)
from azure.search.documents.models import VectorizedQuery

DIMENSIONS = 8


def hotel_fields(*, with_vector: bool = False) -> list[SearchField]:
    fields = [
        SimpleField(name="HotelId", type=SearchFieldDataType.STRING, key=True, filterable=True),
        SearchableField(name="HotelName", sortable=True),
        SearchableField(name="Description"),
        SearchableField(name="Category", filterable=True, sortable=True, facetable=True),
        SearchableField(name="Tags", collection=True, filterable=True, facetable=True),
        SimpleField(name="ParkingIncluded", type=SearchFieldDataType.BOOLEAN, filterable=True, facetable=True),
        SimpleField(
            name="LastRenovationDate", type=SearchFieldDataType.DATE_TIME_OFFSET, filterable=True, sortable=True
        ),
        SimpleField(name="Rating", type=SearchFieldDataType.DOUBLE, filterable=True, sortable=True, facetable=True),
    ]
    if with_vector:
        fields.append(
            SearchField(
                name="DescriptionVector",
                type="Collection(Edm.Single)",
                searchable=True,
                vector_search_dimensions=DIMENSIONS,
                vector_search_profile_name="my-vector-profile",
            )
        )
    return fields


def hotel_index(name: str, *, with_vector: bool = False) -> SearchIndex:
    vector_search = None
    if with_vector:
        vector_search = VectorSearch(
            algorithms=[HnswAlgorithmConfiguration(name="my-hnsw")],
            profiles=[VectorSearchProfile(name="my-vector-profile", algorithm_configuration_name="my-hnsw")],
        )
    return SearchIndex(name=name, fields=hotel_fields(with_vector=with_vector), vector_search=vector_search)


HOTELS = [
    {
        "HotelId": "1",
        "HotelName": "Stay-Kay City Hotel",
        "Description": "Classic hotel near the theatre district.",
        "Category": "Boutique",
        "Tags": ["view", "air conditioning", "concierge"],
        "ParkingIncluded": False,
        "LastRenovationDate": "2022-01-18T00:00:00Z",
        "Rating": 3.6,
    },
    {
        "HotelId": "2",
        "HotelName": "Old Century Hotel",
        "Description": "Walking distance to the river.",
        "Category": "Boutique",
        "Tags": ["pool", "free wifi", "concierge"],
        "ParkingIncluded": False,
        "LastRenovationDate": "2019-02-18T00:00:00Z",
        "Rating": 3.6,
    },
    {
        "HotelId": "3",
        "HotelName": "Gastronomic Landscape Hotel",
        "Description": "Culinary excellence in a quiet place.",
        "Category": "Suite",
        "Tags": ["restaurant", "bar", "continental breakfast"],
        "ParkingIncluded": True,
        "LastRenovationDate": "2015-09-20T00:00:00Z",
        "Rating": 4.8,
    },
    {
        "HotelId": "4",
        "HotelName": "Sublime Palace Hotel",
        "Description": "Old-world charm, luxury and free wifi.",
        "Category": "Luxury",
        "Tags": ["concierge", "view", "free wifi"],
        "ParkingIncluded": True,
        "LastRenovationDate": "2020-02-06T00:00:00Z",
        "Rating": 4.6,
    },
]


@pytest.fixture
def clients(search_double, search_index_name):
    index_client = SearchIndexClient(search_double.endpoint, search_double.credential)
    search_client = SearchClient(search_double.endpoint, search_index_name, search_double.credential)
    yield index_client, search_client
    search_client.close()
    index_client.close()


def test_get_document(clients, search_index_name):
    index_client, search_client = clients
    index_client.create_index(hotel_index(search_index_name))
    search_client.upload_documents(documents=HOTELS)
    # sample_get_document: get_document(key=...), then selected fields only.
    result = search_client.get_document(key="3")
    assert result["HotelName"] == "Gastronomic Landscape Hotel" and result["Tags"][0] == "restaurant"
    selected = search_client.get_document(key="3", selected_fields=["HotelId", "Rating"])
    assert selected == {"HotelId": "3", "Rating": 4.8}
    with pytest.raises(ResourceNotFoundError):
        search_client.get_document(key="no-such-hotel")


def test_index_crud_without_complex_fields(clients, search_index_name):
    index_client, _ = clients
    # create_index, get_index, create_or_update_index (a new field), list, statistics, delete_index.
    created = index_client.create_index(hotel_index(search_index_name))
    assert created.name == search_index_name and [f.name for f in created.fields][0] == "HotelId"
    fetched = index_client.get_index(search_index_name)
    assert [f.name for f in fetched.fields] == [f.name for f in hotel_fields()]
    fetched.fields.append(SearchableField(name="Description_fr"))
    updated = index_client.create_or_update_index(fetched)
    assert "Description_fr" in [f.name for f in updated.fields]
    assert search_index_name in list(index_client.list_index_names())
    assert search_index_name in [i.name for i in index_client.list_indexes()]
    assert index_client.get_index_statistics(search_index_name).document_count == 0
    index_client.delete_index(search_index_name)
    with pytest.raises(ResourceNotFoundError):
        index_client.get_index(search_index_name)
    # The samples' complex field (Address) is outside the double's subset: refused, by name.
    complex_index = hotel_index(search_index_name)
    complex_index.fields.append(
        ComplexField(name="Address", fields=[SimpleField(name="City", type=SearchFieldDataType.STRING)])
    )
    with pytest.raises(HttpResponseError) as refused:
        index_client.create_index(complex_index)
    assert refused.value.status_code == 400 and "not implemented by this stand-in" in refused.value.message


def test_documents_crud(clients, search_index_name, search_double):
    index_client, search_client = clients
    index_client.create_index(hotel_index(search_index_name))
    document = {**HOTELS[0], "HotelId": "100", "HotelName": "Azure Sanctuary"}
    # upload, merge, get, delete, merge_or_upload, each answered per document.
    assert search_client.upload_documents(documents=[document])[0].succeeded
    assert search_client.merge_documents(documents=[{"HotelId": "100", "HotelName": "Azure Sanctuary & Spa"}])[
        0
    ].succeeded
    assert search_client.get_document(key="100")["HotelName"] == "Azure Sanctuary & Spa"
    assert search_client.get_document(key="100")["Category"] == "Boutique"  # merge kept the rest
    assert search_client.delete_documents(documents=[{"HotelId": "100"}])[0].succeeded
    with pytest.raises(ResourceNotFoundError):
        search_client.get_document(key="100")
    result = search_client.merge_or_upload_documents(documents=[{"HotelId": "100", "HotelName": "Azure Sanctuary"}])
    assert result[0].succeeded and result[0].status_code == 201
    assert search_client.get_document_count() == 1
    # A merge of a document that does not exist fails that document only (207, then 404 for it).
    [missing] = search_client.merge_documents(documents=[{"HotelId": "nope", "HotelName": "x"}])
    assert not missing.succeeded and missing.status_code == 404


def test_buffered_sender(clients, search_index_name, search_double):
    index_client, search_client = clients
    index_client.create_index(hotel_index(search_index_name))
    progressed: list[object] = []
    failed: list[object] = []
    with SearchIndexingBufferedSender(
        search_double.endpoint,  # the sample passes the service endpoint, index name and key
        search_index_name,
        search_double.credential,
        on_progress=progressed.append,
        on_error=failed.append,
    ) as sender:
        sender.upload_documents(HOTELS)
        sender.merge_documents([{"HotelId": "1", "Rating": 4.0}])
        sender.delete_documents([{"HotelId": "2"}])
    assert not failed and len(progressed) == len(HOTELS) + 2
    assert search_client.get_document_count() == len(HOTELS) - 1
    assert search_client.get_document(key="1")["Rating"] == 4.0


def test_filter_query(clients, search_index_name):
    index_client, search_client = clients
    index_client.create_index(hotel_index(search_index_name))
    search_client.upload_documents(documents=HOTELS)
    # The sample's filter, order_by and select, with search_text="*" (the double has no full text).
    results = search_client.search(
        search_text="*", filter="Rating gt 4", order_by=["Rating desc"], select=["HotelName", "Rating"]
    )
    assert [(r["HotelName"], r["Rating"]) for r in results] == [
        ("Gastronomic Landscape Hotel", 4.8),
        ("Sublime Palace Hotel", 4.6),
    ]
    wifi = search_client.search(search_text="*", filter="Tags/any(t: t eq 'free wifi')", include_total_count=True)
    assert sorted(r["HotelId"] for r in wifi) == ["2", "4"] and wifi.get_count() == 2
    with pytest.raises(HttpResponseError) as refused:
        list(search_client.search(search_text="WiFi", filter="Rating gt 4"))  # the sample's text part
    assert refused.value.status_code == 400 and "Full-text search" in refused.value.message


def test_vector_query(clients, search_index_name):
    index_client, search_client = clients
    index_client.create_or_update_index(hotel_index(search_index_name, with_vector=True))
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(len(HOTELS), DIMENSIONS)).astype(np.float32)
    documents = [{**hotel, "DescriptionVector": vectors[i].tolist()} for i, hotel in enumerate(HOTELS)]
    search_client.upload_documents(documents=documents)
    query = vectors[2] + 0.05 * rng.normal(size=DIMENSIONS).astype(np.float32)
    # single_vector_search, then single_vector_search_with_filter.
    vector_query = VectorizedQuery(vector=query.tolist(), k_nearest_neighbors=3, fields="DescriptionVector")
    results = list(search_client.search(vector_queries=[vector_query], select=["HotelId", "HotelName"]))
    assert results[0]["HotelId"] == "3" and len(results) == 3
    filtered = search_client.search(
        search_text="", vector_queries=[vector_query], filter="Category eq 'Luxury'", select=["HotelId"]
    )
    assert [r["HotelId"] for r in filtered] == ["4"]
    # simple_hybrid_search needs full text: refused as not implemented, not silently vector-only.
    with pytest.raises(HttpResponseError) as refused:
        list(search_client.search(search_text="Top hotels in town", vector_queries=[vector_query]))
    assert refused.value.status_code == 400 and "not implemented by this stand-in" in refused.value.message
