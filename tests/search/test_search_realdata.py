"""A search on real images: the CIFAR-10 JPEG training tree (skips without it)."""

import pytest

from edgenas.data.datasets import DEFAULT_DATA_ROOT
from edgenas.models import load
from edgenas.search.config import SearchConfig
from edgenas.search.runner import run_search

TREE = DEFAULT_DATA_ROOT / "cifar10-jpg" / "train"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not TREE.is_dir(), reason=f"CIFAR-10 JPEG tree not extracted at {TREE}"),
]


def test_imagefolder_search_on_cifar10(tmp_path, tiny_search_options):
    opts = {**tiny_search_options, "subset": 200, "resolution": 32, "epochs": 1}
    result = run_search(SearchConfig(out=str(tmp_path / "run"), data="imagefolder", data_root=str(TREE), **opts))
    assert result.summary["data"] == "imagefolder" and result.summary["images"] == 200
    spec = load(tmp_path / "run").spec
    assert dict(spec.extra)["classes"].split(",")[0] == "airplane" and spec.num_classes == 10
