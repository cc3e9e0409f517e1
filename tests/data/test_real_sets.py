"""The real classification sets: counts, classes, splits, bad archives."""

from __future__ import annotations

import io
import pickle
import tarfile

import numpy as np
import pytest

from astrodet.data import real_sets as rs


def test_first_radio_galaxy(real_data):
    train = rs.load_first_radio_galaxy("train", root=real_data)
    assert len(train) == 1758
    counts = np.bincount([d["label"] for d in train])
    assert dict(zip(rs.FIRST_CLASSES, counts.tolist())) == {
        "FRI": 395,
        "FRII": 824,
        "Compact": 291,
        "Bent": 248,
    }
    for split in ("valid", "test"):
        d = rs.load_first_radio_galaxy(split, root=real_data)
        assert np.bincount([x["label"] for x in d]).tolist() == [50, 50, 50, 50]
    assert "/FRII/" in train[[d["label"] for d in train].index(1)]["file_name"]


def test_mirabest_skips_blank(real_data, caplog):
    caplog.set_level("INFO")
    train = rs.load_mirabest("train", root=real_data)
    test = rs.load_mirabest("test", root=real_data)
    blank = rs.count_blank(real_data / "mirabest/batches.tar.gz")
    assert blank == {"train": 9, "test": 0}
    assert len(train) == 8 * 88 - 9 and len(test) == 88
    assert "skipped 9 blank images" in caplog.text
    assert all(d["image"].max() > rs.BLANK_MAX / 255 for d in train)
    assert train[0]["image"].shape == (150, 150, 1) and train[0]["image"].dtype == np.float32
    assert len(rs.load_mirabest("train", root=real_data, skip_blank=False)) == 8 * 88


@pytest.mark.parametrize("survey", ["FIRST", "NVSS"])
def test_frdeep(real_data, survey):
    train = rs.load_frdeep("train", survey=survey, root=real_data)
    test = rs.load_frdeep("test", survey=survey, root=real_data)
    blank = rs.count_blank(real_data / f"frdeep/{survey}_PNG_dataset.tar.gz")
    assert blank == {"train": 1 if survey == "FIRST" else 0, "test": 0}
    assert len(train) + len(test) == 600 - blank["train"] and len(test) == 50
    labels = [d["label"] for d in train + test]
    assert abs(np.bincount(labels) - [264, 336]).sum() == blank["train"]


def test_decals_rings_split(real_data):
    train = rs.load_decals_rings("train", root=real_data)
    test = rs.load_decals_rings("test", root=real_data)
    assert len(train) + len(test) == 470
    assert np.bincount([d["label"] for d in test]).tolist() == [47, 47]
    assert not {d["image_id"] for d in train} & {d["image_id"] for d in test}
    again = rs.load_decals_rings("test", root=real_data)
    assert [d["file_name"] for d in again] == [d["file_name"] for d in test]


def test_rgz_first(real_data):
    train = rs.load_rgz_first("train", root=real_data)
    test = rs.load_rgz_first("test", root=real_data)
    assert len(train) + len(test) == 219
    counts = np.bincount([d["label"] for d in train + test], minlength=6)
    assert counts.tolist() == [14, 29, 85, 6, 49, 36]
    assert set(d["label"] for d in test) == set(range(6))  # every class in the test split
    assert test[0]["image"].shape == (100, 100, 1)


def test_stratified_split_is_fixed():
    labels = [0] * 10 + [1] * 5 + [2] * 2
    tr, te = rs.stratified_split(labels, seed=0)
    assert np.bincount(np.asarray(labels)[te]).tolist() == [2, 1, 1]
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(labels)
    np.testing.assert_array_equal(te, rs.stratified_split(labels, seed=0)[1])


def _cifar_tar(path, batches):
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in batches.items():
            raw = obj if isinstance(obj, bytes) else pickle.dumps(obj)
            info = tarfile.TarInfo(f"set/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


def test_cifar_tar_blank_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(10, 255, (4, 16 * 16), dtype=np.uint8)
    data[2] = 0  # blank
    (tmp_path / "mirabest").mkdir()
    _cifar_tar(
        tmp_path / "mirabest/batches.tar.gz",
        {
            "data_batch_1": {"data": data, "labels": [0, 1, 0, 1]},
            "test_batch": {"data": data[:2], "labels": [0, 1]},
            "batches.meta": {"label_names": ["FRI", "FRII"]},
        },
    )
    train = rs.load_mirabest("train", root=tmp_path)
    assert len(train) == 3 and train[0]["image"].shape == (16, 16, 1)
    _cifar_tar(tmp_path / "bad.tar.gz", {"data_batch_1": b"not a pickle"})
    with pytest.raises(ValueError, match="member set/data_batch_1 is not a CIFAR batch"):
        rs.load_cifar_tar(str(tmp_path / "bad.tar.gz"))
    _cifar_tar(tmp_path / "notest.tar.gz", {"data_batch_1": {"data": data, "labels": [0] * 4}})
    with pytest.raises(ValueError, match="no test_batch"):
        rs.load_cifar_tar(str(tmp_path / "notest.tar.gz"))


def test_missing_root_and_bad_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="ASTRODET_REAL_DATA"):
        rs.load_rgz_first("train", root=tmp_path)
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        rs.load_mirabest("valid", root=tmp_path)
    with pytest.raises(ValueError, match="survey must be"):
        rs.load_frdeep("train", survey="VLASS", root=tmp_path)


def test_bad_label_rows(tmp_path):
    (tmp_path / "decals_rings").mkdir()
    (tmp_path / "decals_rings/labels_64.csv").write_text("png_64,ring\na.png,1\nb.png,yes\n")
    with pytest.raises(ValueError, match="line 3: ring must be 0 or 1, got 'yes'"):
        rs.load_decals_rings("train", root=tmp_path)
    (tmp_path / "rgz_first").mkdir()
    (tmp_path / "rgz_first/labels.csv").write_text("rgz_class\n4C_4P\n")
    with pytest.raises(ValueError, match="line 2: unknown rgz_class '4C_4P'"):
        rs.load_rgz_first("train", root=tmp_path)
