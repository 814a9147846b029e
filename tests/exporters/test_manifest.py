"""Manifest round trip, merge, atomic writes and one-line read errors."""

from __future__ import annotations

import json

import pytest

from exporters.errors import ExportError
from exporters.manifest import (
    ArtifactEntry,
    Manifest,
    Source,
    merge,
    read_manifest,
    sha256_of,
    write_manifest,
)


def _entry(fmt="onnx", prec="fp32", **kw):
    return ArtifactEntry(format=fmt, precision=prec, path=f"model-{prec}.onnx", labels=("x", "y"), **kw)


def test_round_trip_and_labels_file(tmp_path):
    m = Manifest((_entry(), _entry(prec="int8", status="failed", error="boom")), Source("arch", "run", "ab" * 32))
    path = write_manifest(m, tmp_path)
    back = read_manifest(tmp_path)
    assert back.artifacts == m.artifacts and back.source == m.source and back.created > 0
    assert read_manifest(path).artifacts == m.artifacts
    assert (tmp_path / "labels.txt").read_text() == "x\ny\n"
    assert [a.precision for a in back.failed] == ["int8"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt", "manifest.json"]  # no temp files
    assert json.loads(path.read_text())["schema_version"] == 1


def test_merge_replaces_same_key_and_keeps_others():
    src = Source("baseline", "mnv3")
    old = Manifest((_entry(prec="fp32"), _entry(prec="fp16")), src)
    new = Manifest((_entry(prec="fp16", bytes=5), _entry("tflite", "fp32")), src)
    merged = merge(old, new)
    assert [a.key for a in merged.artifacts] == [("onnx", "fp32"), ("onnx", "fp16"), ("tflite", "fp32")]
    assert merged.get("onnx", "fp16").bytes == 5
    # entries of another network are dropped
    assert merge(Manifest((_entry(),), Source("baseline", "other")), new).artifacts == new.artifacts


@pytest.mark.parametrize("content,match", [
    (None, "no export manifest"),
    ("{not json", "cannot read manifest"),
    ('{"schema_version": 99}', "schema version 99"),
    ("[1, 2]", "is not a JSON object"),
])
def test_read_errors_are_one_line(tmp_path, content, match):
    if content is not None:
        (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ExportError, match=match) as info:
        read_manifest(tmp_path)
    assert "\n" not in str(info.value)


def test_bad_status_rejected():
    with pytest.raises(ExportError):
        ArtifactEntry("onnx", "fp32", status="maybe")


def test_sha256_of(tmp_path):
    f = tmp_path / "a"
    f.write_bytes(b"abc")
    assert sha256_of(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
