"""The text limit checked before a Vision call (``indexer.limits.check_text``): Azure's
documented 1 to 70 words where words are spaced, and the service's call where the rule is not
documented, with overrides."""

from __future__ import annotations

import pytest

from indexer.errors import InputLimitError
from indexer.limits import check_text, words_are_spaced


@pytest.mark.parametrize(
    "text, spaced",
    [
        ("a cat on a sofa", True),
        ("кошка на диване", True),  # Cyrillic: spaces between words
        ("소파 위의 고양이", True),  # Korean writes spaces between words
        ("沙发上的猫", False),
        ("ソファの上の猫", False),
        ("แมวบนโซฟา", False),
        ("a cat 猫", False),  # one unspaced letter is enough to make whitespace meaningless
    ],
)
def test_which_texts_are_written_with_spaces(text, spaced):
    assert words_are_spaced(text) is spaced


def test_seventy_spaced_words_pass_and_seventy_one_do_not():
    assert check_text(" ".join(["word"] * 70)) == " ".join(["word"] * 70)
    with pytest.raises(InputLimitError) as refused:
        check_text(" ".join(["word"] * 71))
    assert refused.value.limit == "text_words" and refused.value.value == 71


def test_where_words_are_not_spaced_the_service_judges_unless_strict():
    unspaced = " ".join(["猫"] * 80)
    assert check_text(unspaced) == unspaced
    assert check_text(unspaced, word_check="service") == unspaced
    with pytest.raises(InputLimitError):
        check_text(unspaced, word_check="strict")
    assert check_text(" ".join(["word"] * 71), word_check="service")


@pytest.mark.parametrize("word_check", ["auto", "strict", "service"])
@pytest.mark.parametrize("text", ["", "  \n\t"])
def test_an_empty_text_is_refused_in_every_mode(text, word_check):
    with pytest.raises(InputLimitError) as refused:
        check_text(text, word_check=word_check)
    assert refused.value.value == 0


def test_nonsense_is_refused():
    with pytest.raises(InputLimitError):
        check_text(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="word_check"):
        check_text("a cat", word_check="lenient")  # type: ignore[arg-type]
