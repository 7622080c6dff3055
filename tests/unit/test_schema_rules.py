"""The Azure AI Search rules both backends enforce (``indexer.backends.schema_rules``), one
function at a time: names and keys, the schema, document values by EDM type, dates, query
options and filter values. Errors are checked by type, the field or limit they name, and
the words that say what was expected."""

from __future__ import annotations

import pytest

from indexer.backends.schema_rules import check_index_name, key_problem
from indexer.keys import document_key

# --- names and keys -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ab", "images", "0x", "a-b_c", "a-b-c", "my_index_2", "a" * 128, "a_-b", "a-_b"])
def test_index_names_azure_accepts(name):
    assert check_index_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "",
        "Images",
        "-images",
        "_images",
        "im--ages",
        "im__ages",
        "im/ages",
        "..",
        "a" * 129,
        "images\n",
        "im ages",
    ],
)
def test_index_names_azure_refuses(name):
    with pytest.raises(ValueError) as caught:
        check_index_name(name)
    assert str(caught.value) == (
        f"invalid index name {name!r}: use 2 to 128 lower-case letters, digits, '-' and '_', "
        f"starting with a letter or digit, without consecutive dashes or underscores"
    )


@pytest.mark.parametrize("name", [None, 42, b"images"])
def test_an_index_name_must_be_a_string(name):
    with pytest.raises(ValueError, match="invalid index name"):
        check_index_name(name)


@pytest.mark.parametrize("key", ["a", "A-z_0=", "=sha256=abc", "x" * 1024, document_key("photos/é?.jpg")])
def test_valid_keys_have_no_problem(key):
    assert key_problem(key) is None


@pytest.mark.parametrize("key", ["", None, 42, b"abc"])
def test_a_key_must_be_a_non_empty_string(key):
    assert key_problem(key) == f"invalid document key {key!r}: the key must be a non-empty string"


def test_a_key_may_have_1024_characters_but_no_more():
    assert key_problem("x" * 1024) is None
    assert key_problem("x" * 1025) == "invalid document key: 1025 characters, the limit is 1024"
    # The length is checked first: the (long) key itself is not repeated in the reason.
    assert key_problem("/" * 1025) == "invalid document key: 1025 characters, the limit is 1024"


@pytest.mark.parametrize("key", ["a b", "a/b", "a.b", "é", "a+b", "abc\n", "\nabc", "a\tb"])
def test_a_key_with_other_characters_is_refused_naming_the_allowed_ones(key):
    assert key_problem(key) == (
        f"invalid document key {key!r}: keys can only contain letters, digits, underscore (_), "
        f"dash (-) or equal sign (=); encode other identities with indexer.keys.document_key"
    )


@pytest.mark.parametrize("key", ["_", "_hidden", "__x"])
def test_a_key_cannot_start_with_an_underscore(key):
    assert key_problem(key) == f"invalid document key {key!r}: a key cannot start with an underscore"
