"""GalaxyMNIST in its published HDF5 layout, built tiny in tmp_path."""

from __future__ import annotations

import gzip
import hashlib
import io

import h5py
import numpy as np
import pytest

from astrodet.data import gmnist


def _write(root, split, n=8, labels=None, key="images"):
    path = gmnist.gmnist_path(split, root=root)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f[key] = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
        f["labels"] = np.arange(n) % 4 if labels is None else np.asarray(labels)
    return path


def test_load(tmp_path):
    _write(tmp_path, "train")
    dicts = gmnist.load_gmnist("train", root=tmp_path)
    assert len(dicts) == 8 and [d["label"] for d in dicts[:4]] == [0, 1, 2, 3]
    img = dicts[0]["image"]
    assert img.shape == (64, 64, 3) and img.dtype == np.float32 and img.max() <= 1.0
    assert gmnist.gmnist_path("test", root=tmp_path).parts[-3:] == (
        "GalaxyMNIST",
        "raw",
        "test_dataset.hdf5",
    )


def test_missing_file_says_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        gmnist.load_gmnist("test", root=tmp_path)
    msg = str(e.value)
    assert "GalaxyMNIST/raw/test_dataset.hdf5" in msg and "datasets/README.md" in msg
    assert gmnist.GMNIST_URLS["test"] in msg


def test_bad_files(tmp_path):
    _write(tmp_path, "train", labels=[0, 1, 2, 3, 4, 0, 1, 2])
    with pytest.raises(ValueError, match="1 labels outside 0..3"):
        gmnist.load_gmnist("train", root=tmp_path)
    _write(tmp_path / "b", "train", key="pixels")
    with pytest.raises(ValueError, match="no 'images' dataset"):
        gmnist.load_gmnist("train", root=tmp_path / "b")
    path = _write(tmp_path / "c", "train")
    with pytest.raises(ValueError, match="md5 .* does not match"):
        gmnist.read_gmnist_hdf5(path, md5="0" * 32)
    assert len(gmnist.read_gmnist_hdf5(path, md5=hashlib.md5(path.read_bytes()).hexdigest())[1])
    with pytest.raises(ValueError, match="unknown GalaxyMNIST split"):
        gmnist.load_gmnist("valid", root=tmp_path)


def test_download_is_replaced_at_the_boundary(tmp_path, monkeypatch):
    src = _write(tmp_path / "src", "train")
    payload = gzip.compress(src.read_bytes())
    seen = []

    def fake_urlopen(url):
        seen.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(gmnist.urllib.request, "urlopen", fake_urlopen)
    (path,) = gmnist.download_gmnist(root=tmp_path / "dst", splits=("train",))
    assert seen == [gmnist.GMNIST_URLS["train"]]
    assert path.read_bytes() == src.read_bytes()
    with pytest.raises(ValueError, match="md5 mismatch"):
        gmnist.download_gmnist(root=tmp_path / "d2", splits=("train",), md5={"train": "0" * 32})
    assert not gmnist.gmnist_path("train", root=tmp_path / "d2").exists()
