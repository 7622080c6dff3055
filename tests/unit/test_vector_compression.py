"""``SEARCH_VECTOR_COMPRESSION``: the setting, the compressed schema it asks for (as the SDK's
models read it), and the check that an existing index is compressed as asked."""

from __future__ import annotations

import pytest
from azure.search.documents.indexes.models import (
    BinaryQuantizationCompression,
    ScalarQuantizationCompression,
    SearchIndex,
)

from indexer.errors import ConfigurationError, VectorCompressionMismatchError, classify
from indexer.schema import VECTOR_FIELD, load_schema
from indexer.settings import load_settings
from indexer.vector_compression import (
    COMPRESSIONS,
    DEFAULT_COMPRESSION,
    DEFAULT_OVERSAMPLING,
    check_compression,
    compression_of,
)


@pytest.fixture
def schema():
    return load_schema("2023-04-15")


def test_the_schema_file_is_uncompressed_and_its_vectors_stored(schema):
    assert schema.compression == "none"
    assert schema.fields[VECTOR_FIELD]["stored"] is True
    assert schema.with_compression("none") is schema


@pytest.mark.parametrize(
    ("compression", "model", "kind"),
    [
        ("scalar", ScalarQuantizationCompression, "scalarQuantization"),
        ("binary", BinaryQuantizationCompression, "binaryQuantization"),
    ],
)
def test_a_compressed_schema_is_what_the_sdk_reads_as_that_quantization_with_rescoring_from_originals(
    schema, compression, model, kind
):
    compressed = schema.with_compression(compression)

    index = SearchIndex(compressed.named("images"))
    (entry,) = index.vector_search.compressions
    (profile,) = index.vector_search.profiles
    vector = next(f for f in index.fields if f.name == VECTOR_FIELD)
    assert isinstance(entry, model) and entry.kind == kind
    assert profile.compression_name == entry.compression_name and vector.vector_search_profile_name == profile.name
    assert entry.rescoring_options.enable_rescoring is True
    assert entry.rescoring_options.rescore_storage_method == "preserveOriginals"
    assert entry.rescoring_options.default_oversampling == DEFAULT_OVERSAMPLING[compression] >= 1
    assert vector.stored is False and vector.retrievable is False
    assert compressed.compression == compression and compressed.pin == schema.pin
    assert schema.compression == "none" and schema.fields[VECTOR_FIELD]["stored"] is True  # the original untouched


def test_scalar_quantization_is_to_int8(schema):
    (entry,) = SearchIndex(schema.with_compression("scalar").named("i")).vector_search.compressions
    assert entry.parameters.quantized_data_type == "int8"


def test_a_compressed_schema_keeps_its_compression_when_the_vectorizer_and_dimensions_change(schema):
    from indexer.schema import VectorizerEndpoint

    compressed = schema.with_compression("binary").with_vectorizer(VectorizerEndpoint("https://f/api/vectorize"))
    assert compressed.compression == "binary" and compressed.vectorizer_name == "imgsearch-vectorize"
    assert schema.with_dimensions(512).with_compression("scalar").compression == "scalar"


def test_only_an_uncompressed_schema_is_compressed(schema):
    with pytest.raises(ValueError, match="uncompressed"):
        schema.with_compression("scalar").with_compression("binary")


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({}, "none"),
        ({"fields": [{"name": VECTOR_FIELD, "vectorSearchProfile": "p"}]}, "none"),
        (
            {
                "fields": [{"name": VECTOR_FIELD, "vectorSearchProfile": "p"}],
                "vectorSearch": {
                    "profiles": [{"name": "p", "compression": "c"}],
                    "compressions": [{"name": "c", "kind": "x"}],
                },
            },
            "x",
        ),
        (
            {
                "fields": [{"name": VECTOR_FIELD, "vectorSearchProfile": "p"}],
                "vectorSearch": {"profiles": [{"name": "p", "compression": "c"}]},
            },
            "unknown (c)",
        ),
    ],
)
def test_the_compression_of_a_definition_made_elsewhere_is_named_as_it_is(definition, expected):
    assert compression_of(definition, VECTOR_FIELD) == expected


def test_another_compression_is_a_mismatch_that_exits_as_a_pin_mismatch_does():
    assert check_compression("scalar", "scalar", where="w", remedy="r") is None
    with pytest.raises(VectorCompressionMismatchError) as caught:
        check_compression("none", "binary", where="the index 'x'", remedy="do y")
    assert str(caught.value) == (
        "the index 'x' stores its vectors uncompressed (float32), not with binary quantization, and a vector "
        "field's compression is fixed when the index is created; do y"
    )
    assert (caught.value.expected, caught.value.actual) == ("binary", "none")
    assert classify(caught.value).exit_code == 3 and classify(caught.value).code == "VectorCompressionMismatch"


@pytest.mark.parametrize(("value", "expected"), [("scalar", "scalar"), ("BINARY", "binary"), (" none ", "none")])
def test_the_setting_names_one_of_three_kinds(monkeypatch, value, expected):
    monkeypatch.setenv("SEARCH_VECTOR_COMPRESSION", value)
    settings = load_settings()
    assert settings.search_vector_compression == expected == settings.vector_compression
    assert expected in COMPRESSIONS


def test_unset_or_empty_means_the_default_for_new_indexes(monkeypatch):
    monkeypatch.delenv("SEARCH_VECTOR_COMPRESSION", raising=False)
    assert load_settings().search_vector_compression is None
    monkeypatch.setenv("SEARCH_VECTOR_COMPRESSION", "")
    settings = load_settings()
    assert settings.search_vector_compression is None and settings.vector_compression == DEFAULT_COMPRESSION


@pytest.mark.parametrize("value", ["zip", "int8", "scalar,binary"])
def test_any_other_value_is_a_configuration_error_naming_the_setting(monkeypatch, value):
    monkeypatch.setenv("SEARCH_VECTOR_COMPRESSION", value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert f"SEARCH_VECTOR_COMPRESSION={value!r}" in str(caught.value)
    assert "'none', 'scalar' or 'binary'" in str(caught.value)
    assert classify(caught.value).exit_code == 2
