"""The feature cache: hits read the file, changed keys recompute, corrupted files recompute."""

import io
import json
import logging

import numpy as np
import pytest
import torch

from astrodet.zoo import Trunk
from probe import features as pf
from probe.datasets import limit_indices, load_split, prepare_image

TINY_VIT = {"embed_dim": 32, "depth": 1, "num_heads": 2}


@pytest.fixture
def calls(monkeypatch):
    """Count the trunk's feature computations."""
    counter = {"n": 0}
    original = Trunk.features

    def counting(self, images, **kw):
        counter["n"] += 1
        return original(self, images, **kw)

    monkeypatch.setattr(Trunk, "features", counting)
    return counter


def extract(cache, **kw):
    args = dict(
        model="dino",
        dataset="probe_toy",
        split="train",
        weights="none",
        image_size=32,
        batch_size=8,
        device="cpu",
        cache_dir=cache,
        model_kwargs=TINY_VIT,
    )
    args.update(kw)
    return pf.extract_features(**args)


def cache_files(cache):
    return sorted((cache / "features").rglob("*.npz"))


def test_cache_hit_and_changed_key(toy_dataset, tmp_path, calls):
    x1, y1 = extract(tmp_path)
    assert x1.shape == (26, 32) and x1.dtype == np.float32
    assert y1.tolist() == [0] * 12 + [1] * 8 + [2] * 6
    computed = calls["n"]
    assert computed == 4  # 26 images in batches of 8
    x2, y2 = extract(tmp_path)
    assert calls["n"] == computed  # read from the cache
    np.testing.assert_array_equal(x1, x2)
    extract(tmp_path, image_size=48)  # preprocessing is part of the key
    assert calls["n"] == 2 * computed
    extract(tmp_path, stretch="sqrt")
    assert calls["n"] == 3 * computed
    extract(tmp_path, model_kwargs={**TINY_VIT, "embed_dim": 16})
    assert calls["n"] == 4 * computed
    assert len(cache_files(tmp_path)) == 4
    extract(tmp_path, stretch="sqrt")
    assert calls["n"] == 4 * computed


@pytest.mark.parametrize("damage", ["truncate", "garbage", "checksum", "shape"])
def test_corrupted_cache_is_recomputed(toy_dataset, tmp_path, calls, caplog, damage):
    x1, _ = extract(tmp_path)
    (path,) = cache_files(tmp_path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a numpy file")
    else:
        with np.load(path) as z:
            arrays = dict(z)
        if damage == "checksum":
            arrays["features"] = arrays["features"] + 1.0
        else:
            arrays["features"] = arrays["features"][:, :5]
            meta = json.loads(bytes(arrays["meta"]).decode())
            meta["feature_dim"] = 5
            arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        path.write_bytes(buf.getvalue())
    n = calls["n"]
    with caplog.at_level(logging.WARNING, logger="probe.features"):
        x2, _ = extract(tmp_path)
    assert calls["n"] > n
    assert "corrupted" in caplog.text and str(path) in caplog.text
    assert x2.shape == x1.shape
    n = calls["n"]
    extract(tmp_path)  # the recomputed file is good again
    assert calls["n"] == n


def test_weights_file_hash_is_the_key(toy_dataset, tmp_path, calls):
    from astrodet.zoo import build_trunk

    torch.manual_seed(0)
    trunk = build_trunk("dino", weights="none", img_size=32, **TINY_VIT)
    ckpt = tmp_path / "tiny.pth"
    torch.save(trunk.model.state_dict(), ckpt)
    xa, _ = extract(tmp_path, weights=str(ckpt))
    extract(tmp_path, weights=str(ckpt))
    n = calls["n"]
    sd = {k: v + 0.01 for k, v in trunk.model.state_dict().items()}
    torch.save(sd, ckpt)  # same path, new content: a new key
    xb, _ = extract(tmp_path, weights=str(ckpt))
    assert calls["n"] > n
    assert not np.allclose(xa, xb)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        extract(tmp_path, weights=str(tmp_path / "missing.pth"))


def test_cli_writes_both_splits(toy_dataset, tmp_path, capsys):
    argv = [
        "--model",
        "dino",
        "--dataset",
        "probe_toy",
        "--weights",
        "none",
        "--image-size",
        "32",
        "--device",
        "cpu",
        "--cache-dir",
        str(tmp_path),
        "--model-kwargs",
        json.dumps(TINY_VIT),
    ]
    assert pf.main(argv) == 0
    out = capsys.readouterr().out
    assert (
        "probe_toy_train: features (26, 32)" in out and "probe_toy_test: features (18, 32)" in out
    )
    assert len(cache_files(tmp_path)) == 2


def test_unknown_names_list_valid_ones(toy_dataset, capsys):
    with pytest.raises(SystemExit) as e:
        pf.main(["--model", "vgg", "--dataset", "probe_toy"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown model 'vgg'" in err and "dino" in err and "resnet50" in err
    with pytest.raises(SystemExit) as e:
        pf.main(["--model", "dino", "--dataset", "sdss"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'sdss'" in err and "probe_toy" in err and "first_radio_galaxy" in err


def test_prepare_image_upscales_and_limits(toy_dataset):
    split = load_split("probe_toy", "train")
    x = prepare_image(split.dicts[0], stretch=None, image_size=32)
    assert x.shape == (3, 32, 32) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    x = prepare_image(
        split.dicts[0], stretch=None, image_size=8, center_crop=8, grey_one_channel=True
    )
    assert x.shape == (1, 8, 8)
    idx = limit_indices(split.labels, 5)
    assert len(idx) == 5 and set(split.labels[idx]) == {0, 1, 2}


@pytest.mark.real_data
def test_rgz_label_schemes(real_data):
    morph = load_split("rgz_first", "train")
    assert morph.class_names == ["1C_1P", "1C_2P", "1C_3P", "2C_2P", "2C_3P", "3C_3P"]
    peaks = load_split("rgz_first", "train", label_scheme="peaks")
    comps = load_split("rgz_first", "train", label_scheme="components")
    assert peaks.class_names == ["1P", "2P", "3P"] and comps.class_names == ["1C", "2C", "3C"]
    names = np.array(morph.class_names)[morph.labels]
    assert [int(n[3]) - 1 for n in names] == peaks.labels.tolist()
    assert [int(n[0]) - 1 for n in names] == comps.labels.tolist()
    with pytest.raises(ValueError, match="applies to RGZ sets"):
        load_split("first_radio_galaxy", "test", label_scheme="peaks")


def test_cache_root_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("ASTRODET_CACHE", raising=False)
    monkeypatch.setenv("ASTRODET_DATASETS", str(tmp_path / "data"))
    assert pf.cache_root() == tmp_path / "data" / "cache"
    monkeypatch.setenv("ASTRODET_CACHE", str(tmp_path / "c"))
    assert pf.cache_root() == tmp_path / "c"
    assert pf.cache_root(tmp_path / "x") == tmp_path / "x"


def test_image_rewritten_in_place_is_recomputed(tmp_path, calls):
    import os

    from PIL import Image

    from astrodet.data import DatasetCatalog, MetadataCatalog

    root = tmp_path / "rewrite_folder"
    for c in ("a", "b"):
        for i in range(5):
            path = root / c / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8), 20 * i, np.uint8)).save(path)
    try:
        kw = dict(dataset=str(root), image_size=16)
        extract(tmp_path / "cache", **kw)
        first = calls["n"]
        extract(tmp_path / "cache", **kw)
        assert calls["n"] == first  # cached
        path = root / "a" / "0.png"
        stat = path.stat()
        Image.fromarray(np.full((8, 8), 255, np.uint8)).save(path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        extract(tmp_path / "cache", **kw)
        assert calls["n"] > first  # same name, new content: recomputed
    finally:
        for s in ("train", "test"):
            DatasetCatalog.remove(f"rewrite_folder_{s}")
            MetadataCatalog.remove(f"rewrite_folder_{s}")


def test_resize_then_center_crop_as_torchvision():
    # DINOv2's Hugging Face preprocessing: shorter side to 256, centre crop 224 (here 32, 24).
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    rng = np.random.default_rng(0)
    image = rng.random((16, 24, 1)).astype(np.float32)
    x = prepare_image({"image": image}, stretch=None, image_size=24, resize=32, center_crop=24)
    ref = torch.from_numpy(image).permute(2, 0, 1).expand(3, -1, -1)
    ref = TF.resize(ref, 32, interpolation=InterpolationMode.BICUBIC, antialias=False)  # 32x48
    ref = TF.center_crop(ref, [24, 24]).clamp(0, 1)
    assert x.shape == (3, 24, 24)
    torch.testing.assert_close(x, ref, rtol=0, atol=1e-5)
    # without --resize the crop takes native pixels, so the picture differs
    native = prepare_image({"image": image}, stretch=None, image_size=24, center_crop=16)
    assert not torch.allclose(native, x, atol=1e-2)


def test_resize_is_in_the_cache_key(toy_dataset, tmp_path, calls):
    extract(tmp_path, center_crop=28)
    n = calls["n"]
    extract(tmp_path, center_crop=28, resize=32)
    assert calls["n"] == 2 * n
    extract(tmp_path, center_crop=28, resize=32)
    assert calls["n"] == 2 * n
    with pytest.raises(ValueError, match="center_crop=40 is larger than the resized image"):
        extract(tmp_path, center_crop=40, resize=32)


def test_cli_resize_must_be_positive(toy_dataset, capsys):
    with pytest.raises(SystemExit) as e:
        pf.main(["--model", "dino", "--dataset", "probe_toy", "--resize", "0"])
    assert e.value.code == 2
    assert "--resize: expected a positive number of pixels, got 0" in capsys.readouterr().err


def test_hub_id_weights(toy_dataset, tmp_path, monkeypatch, calls):
    # --weights hf:<repo> (e.g. the paper's facebook/dinov2-base) goes through the zoo's hub
    # download and keys the cache by the hub id.
    from astrodet.zoo import build_trunk
    from astrodet.zoo import weights as zoo_weights

    torch.manual_seed(3)
    src = build_trunk("dino", weights="none", img_size=32, **TINY_VIT)
    asked = []

    def fake_download(repo_id):
        asked.append(repo_id)
        return src.model.state_dict()

    monkeypatch.setattr(zoo_weights, "download_hf", fake_download)
    x, _ = extract(tmp_path, weights="hf:someone/dino-tiny")
    assert asked == ["someone/dino-tiny"]
    images = torch.stack(
        [
            prepare_image(d, stretch=None, image_size=32)
            for d in load_split("probe_toy", "train").dicts
        ]
    )
    # the features of the images as the decoded-image cache keeps them (float16)
    np.testing.assert_allclose(x, src.features(images.half().float()).numpy(), rtol=0, atol=1e-5)
    (path,) = cache_files(tmp_path)
    with np.load(path) as z:
        assert json.loads(bytes(z["meta"]).decode())["key"]["weights"] == "hub:hf:someone/dino-tiny"


@pytest.fixture
def tiny_weights(tmp_path):
    """A fixed tiny ViT checkpoint: the same features on every call."""
    from astrodet.zoo import build_trunk

    torch.manual_seed(0)
    path = tmp_path / "tiny_vit.pth"
    torch.save(
        build_trunk("dino", weights="none", img_size=32, **TINY_VIT).model.state_dict(), path
    )
    return str(path)


def _meta_key(path):
    with np.load(path) as z:
        return json.loads(bytes(z["meta"]).decode())["key"]


def test_precision_is_in_the_cache_key(toy_dataset, tmp_path, calls):
    x32, _ = extract(tmp_path, precision="fp32")
    n = calls["n"]
    x16, _ = extract(tmp_path, precision="bf16")
    assert calls["n"] == 2 * n  # not the fp32 file
    extract(tmp_path, precision="bf16")
    assert calls["n"] == 2 * n  # its own file, read back
    keys = [_meta_key(p) for p in cache_files(tmp_path)]
    assert sorted(k.get("precision", "fp32") for k in keys) == ["bf16", "fp32"]
    # auto on a CPU is fp32: the fp32 file serves it
    extract(tmp_path, precision="auto")
    assert calls["n"] == 2 * n
    assert x32.shape == x16.shape and x16.dtype == np.float32
    with pytest.raises(ValueError, match="'half' is not one of"):
        extract(tmp_path, precision="half")


def test_decoded_images_are_read_back_not_decoded_again(
    toy_dataset, tmp_path, monkeypatch, tiny_weights
):
    decoded = {"n": 0}
    real = pf.prepare_image

    def counting(d, **kw):
        decoded["n"] += 1
        return real(d, **kw)

    monkeypatch.setattr(pf, "prepare_image", counting)
    x1, _ = extract(tmp_path, weights=tiny_weights)
    assert decoded["n"] == 26
    (npy,) = sorted((tmp_path / "decoded").rglob("*.npy"))
    images = np.load(npy)
    assert images.dtype == np.float16 and images.shape == (26, 1, 32, 32)  # grey: 1 channel
    # another model on the same images: no decoding
    extract(tmp_path, model_kwargs={**TINY_VIT, "embed_dim": 16})
    assert decoded["n"] == 26
    # the same model once its features are gone: the same features from the kept images
    for f in cache_files(tmp_path):
        f.unlink()
    x2, _ = extract(tmp_path, weights=tiny_weights)
    assert decoded["n"] == 26
    np.testing.assert_array_equal(x1, x2)
    # other preprocessing is another file; --no-decoded-cache decodes every time
    extract(tmp_path, image_size=48)
    assert decoded["n"] == 52
    extract(tmp_path, image_size=48, decoded_cache=False)
    assert decoded["n"] == 78
    assert len(list((tmp_path / "decoded").rglob("*.npy"))) == 2
    assert not list((tmp_path / "decoded").rglob("*.tmp"))


def test_corrupted_decoded_images_are_decoded_again(toy_dataset, tmp_path, caplog, tiny_weights):
    x1, _ = extract(tmp_path, weights=tiny_weights)
    (npy,) = sorted((tmp_path / "decoded").rglob("*.npy"))
    npy.write_bytes(npy.read_bytes()[:200])
    for f in cache_files(tmp_path):
        f.unlink()
    with caplog.at_level(logging.WARNING, logger="probe.features"):
        x2, _ = extract(tmp_path, weights=tiny_weights)
    assert "decoded image file" in caplog.text and str(npy) in caplog.text
    np.testing.assert_array_equal(x1, x2)
    assert np.load(npy).shape == (26, 1, 32, 32)


def test_cli_precision_flag(toy_dataset, tmp_path, capsys):
    argv = ["--model", "dino", "--dataset", "probe_toy", "--weights", "none", "--image-size",
            "32", "--device", "cpu", "--cache-dir", str(tmp_path), "--model-kwargs",
            json.dumps(TINY_VIT), "--precision", "bf16", "--no-decoded-cache"]  # fmt: skip
    assert pf.main(argv) == 0
    keys = [_meta_key(p) for p in cache_files(tmp_path)]
    assert [k["precision"] for k in keys] == ["bf16", "bf16"]
    assert not any("decoded" in k for k in keys) and not (tmp_path / "decoded").exists()
    with pytest.raises(SystemExit):
        pf.main([*argv[:-3], "--precision", "int8"])
    assert "invalid choice: 'int8'" in capsys.readouterr().err


@pytest.mark.real_data
def test_bf16_probe_matches_fp32_on_real_galaxies(real_data, tmp_path):
    """bfloat16 autocast features give the fp32 probe's macro F1 (DECaLS rings, 470 real
    galaxies, 32 px): a random ResNet-18 whose batch-norm statistics are measured on the
    training images (so its features spread like a trained trunk's), the fast probe."""
    from sklearn.metrics import f1_score

    from astrodet.zoo import build_trunk
    from probe.heads import fit_predict

    torch.manual_seed(0)
    trunk = build_trunk("resnet18", weights="none")
    for m in trunk.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches below
    split = load_split("decals_rings", "train", limit=256)
    images = torch.stack([prepare_image(d, stretch=None, image_size=32) for d in split.dicts])
    trunk.train()
    with torch.no_grad():
        for i in range(0, len(images), 64):
            trunk(images[i : i + 64])
    ckpt = tmp_path / "resnet18_bn.pth"
    torch.save(trunk.model.state_dict(), ckpt)
    f1, test_features = {}, {}
    for precision in ("fp32", "bf16"):
        out = pf.extract_splits(
            model="resnet18",
            dataset="decals_rings",
            weights=str(ckpt),
            image_size=32,
            device="cpu",
            cache_dir=tmp_path,
            precision=precision,
        )
        (xtr, ytr), (xte, yte) = out["train"], out["test"]
        test_features[precision] = xte
        scores = []
        for seed in range(3):
            pred, _ = fit_predict(
                xtr, ytr, xte, num_classes=2, protocol="fast", device="cpu", seed=seed
            )
            scores.append(f1_score(yte, pred, average="macro"))
        f1[precision] = float(np.mean(scores))
    assert f1["fp32"] > 0.55  # the features carry the class
    assert abs(f1["bf16"] - f1["fp32"]) <= 0.01, f1
    # and the features themselves: bf16's error is well below their spread over images
    a, b = test_features["fp32"], test_features["bf16"]
    spread = a.std(0)
    live = spread > 0
    assert np.median(spread[live] / (a - b).std(0)[live]) > 5
