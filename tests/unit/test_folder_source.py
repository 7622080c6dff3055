"""FolderSource: what a local folder offers for indexing, and the size guard on reading."""

from __future__ import annotations

import io
import os
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from indexer.errors import FolderNotFoundError, InputLimitError, InvalidImageError
from indexer.keys import document_key
from indexer.sources.folder import FolderSource
from tests.oracle import matches


def image_bytes(image_format: str = "PNG", size=(32, 24), color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=image_format)
    return buffer.getvalue()


def png_bytes(size=(32, 24), color=(200, 30, 30)) -> bytes:
    return image_bytes("PNG", size, color)


# What an iPhone's HEIC starts with: a box size, then 'ftyp' and the brand.
HEIC_HEAD = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"


def write(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    write(root / "b.png", png_bytes())
    write(root / "A.JPG", image_bytes("JPEG"))
    write(root / "sub" / "deeper" / "c.webp", image_bytes("WEBP"))
    write(root / "sub" / "d.TIFF", image_bytes("TIFF"))
    write(root / "sub" / "notes.txt", b"shopping list")
    write(root / "scan", image_bytes("BMP"))  # no extension: the bytes decide
    write(root / "renamed.png", b"just text, whatever the name says")
    write(root / "IMG_0001.heic", HEIC_HEAD)
    write(root / "layers.psd", b"8BPS\x00\x01" + bytes(20))
    write(root / ".hidden.png", png_bytes())
    write(root / ".cache" / "e.png")  # inside a hidden folder
    write(root / "sub" / ".git" / "f.jpg")
    return root


def test_lists_image_files_recursively_in_sorted_order_and_skips_hidden_ones(tree: Path) -> None:
    source = FolderSource(tree)
    items = list(source.list_items())

    assert [item.fields["blob_path"] for item in items] == [
        "A.JPG",
        "IMG_0001.heic",
        "b.png",
        "scan",
        "sub/d.TIFF",
        "sub/deeper/c.webp",
    ]
    assert [item.fields["content_type"] for item in items] == [
        "image/jpeg",
        "image/heif",  # sent to Vision as a rendition (indexer.renditions)
        "image/png",
        "image/bmp",
        "image/tiff",
        "image/webp",
    ]


def test_files_that_are_not_images_are_skipped_with_the_reason(tree: Path) -> None:
    source = FolderSource(tree)
    list(source.list_items())

    reasons = dict(source.skipped)
    assert sorted(reasons) == ["layers.psd", "renamed.png", "sub/notes.txt"]
    assert reasons["layers.psd"].startswith("Photoshop (PSD) is not a format read here")
    assert reasons["renamed.png"].startswith("not a readable image") and "JPEG, PNG" in reasons["renamed.png"]


def test_listing_twice_gives_the_same_items_and_keys(tree: Path) -> None:
    source = FolderSource(tree)

    first = [(item.identity, item.key) for item in source.list_items()]
    second = [(item.identity, item.key) for item in source.list_items()]

    assert first == second


def test_item_identity_source_and_fields(tree: Path) -> None:
    path = tree / "sub" / "deeper" / "c.webp"
    stamp = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC).timestamp()
    os.utime(path, (stamp, stamp))

    item = next(i for i in FolderSource(tree).list_items() if i.fields["file_name"] == "c.webp")

    resolved = str(path.resolve())
    assert item.identity == resolved
    assert item.source == resolved
    assert item.key == document_key(resolved)
    assert item.fields == {
        "container": tree.resolve().as_uri(),
        "blob_path": "sub/deeper/c.webp",
        "file_name": "c.webp",
        "content_type": "image/webp",
        "last_modified": "2024-05-06T07:08:09.123Z",
        "size_bytes": path.stat().st_size,
    }


def test_relative_root_gives_the_same_identity_as_absolute(tree: Path, monkeypatch) -> None:
    monkeypatch.chdir(tree.parent)

    relative = [item.identity for item in FolderSource(Path("photos")).list_items()]
    absolute = [item.identity for item in FolderSource(tree).list_items()]

    assert relative == absolute
    assert FolderSource(Path("photos")).label == FolderSource(tree).label


def test_conditions_select_this_folder_by_its_label(tree: Path) -> None:
    source = FolderSource(tree)
    item = next(source.list_items())

    (condition,) = source.conditions

    assert matches(condition, item.fields)
    assert not matches(condition, {"container": (tree / "sub").resolve().as_uri()})


def test_read_returns_the_file_bytes(tree: Path) -> None:
    item = next(i for i in FolderSource(tree).list_items() if i.fields["file_name"] == "b.png")

    assert item.read() == (tree / "b.png").read_bytes()


def test_read_refuses_a_file_at_the_limit_without_loading_it(tmp_path: Path) -> None:
    limit = 8 * 1024 * 1024
    big = tmp_path / "big.jpg"
    with big.open("wb") as handle:  # sparse: no disk used, but a read would allocate it all
        handle.write(b"\xff\xd8\xff\xe0")  # a JPEG's first bytes
        handle.truncate(limit)
    item = next(FolderSource(tmp_path, max_bytes=limit).list_items())

    tracemalloc.start()
    try:
        with pytest.raises(InputLimitError) as caught:
            item.read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert caught.value.limit == "image_bytes"
    assert peak < limit // 8, f"reading allocated {peak:,} bytes for a file that should not have been read"


def test_read_accepts_a_file_just_under_the_limit(tmp_path: Path) -> None:
    data = png_bytes()
    write(tmp_path / "ok.png", data)

    item = next(FolderSource(tmp_path, max_bytes=len(data) + 1).list_items())

    assert item.read() == data


def test_an_empty_file_is_no_image(tmp_path: Path) -> None:
    write(tmp_path / "empty.png", b"")
    source = FolderSource(tmp_path)

    assert list(source.list_items()) == [] and source.skipped == [("empty.png", "the file is empty")]
    with pytest.raises(InvalidImageError, match="empty"):
        source.get_item("empty.png")


def test_get_item_by_relative_path(tree: Path) -> None:
    source = FolderSource(tree)

    item = source.get_item("sub/d.TIFF")

    assert item.identity == str((tree / "sub" / "d.TIFF").resolve())
    assert item.fields["content_type"] == "image/tiff"


@pytest.mark.parametrize("name", ["../photos/b.png", "/etc/passwd", "missing.png"])
def test_get_item_refuses_paths_outside_or_missing(tree: Path, name: str) -> None:
    with pytest.raises(FolderNotFoundError):
        FolderSource(tree).get_item(name)


def test_get_item_refuses_a_file_that_is_no_image(tree: Path) -> None:
    with pytest.raises(InvalidImageError, match="notes.txt"):
        FolderSource(tree).get_item("sub/notes.txt")


def test_a_missing_folder_or_a_file_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(FolderNotFoundError, match="nowhere"):
        FolderSource(tmp_path / "nowhere")
    write(tmp_path / "x.png")
    with pytest.raises(FolderNotFoundError, match="not a folder"):
        FolderSource(tmp_path / "x.png")


def test_symlinked_folders_are_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root / "a.png", png_bytes())
    (root / "loop").symlink_to(root, target_is_directory=True)

    items = list(FolderSource(root).list_items())

    assert [item.fields["blob_path"] for item in items] == ["a.png"]
