"""Detection loader: boxes, labels, flips, fractions, resumable stream, bad input."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from astrodet.data.detection import (
    DetectionDataset,
    RandomColorJitter,
    RandomContrast,
    RandomFlip,
    RandomGaussianBlur,
    RandomTranspose,
    TrainingSampler,
    build_detection_test_loader,
    build_detection_train_loader,
)
from astrodet.structures import BoxMode


def _dict(i, boxes_xywh, *, h=32, w=48, cats=None):
    img = np.zeros((h, w), np.float32)
    for x, y, bw, bh in boxes_xywh:
        img[int(y) : int(y + bh), int(x) : int(x + bw)] = 1.0
    anns = [
        {"bbox": list(b), "bbox_mode": BoxMode.XYWH_ABS, "category_id": (cats or [0] * 9)[k]}
        for k, b in enumerate(boxes_xywh)
    ]
    return {"image": img, "height": h, "width": w, "image_id": i, "annotations": anns}


def test_boxes_xyxy_and_labels_plus_one():
    ds = DetectionDataset([_dict(7, [(4, 2, 10, 6), (20, 10, 5, 5)], cats=[0, 2])], stretch=None)
    image, target, d = ds[0]
    assert image.shape == (3, 32, 48) and image.dtype == torch.float32
    assert float(image.min()) >= 0 and float(image.max()) <= 1
    torch.testing.assert_close(target["boxes"], torch.tensor([[4.0, 2, 14, 8], [20, 10, 25, 15]]))
    assert target["labels"].tolist() == [1, 3] and target["labels"].dtype == torch.int64
    assert target["image_id"] == 7 and d["image_id"] == 7


@pytest.mark.parametrize("horizontal", [True, False])
def test_flip_moves_boxes_with_the_image(horizontal):
    ds = DetectionDataset([_dict(0, [(4, 2, 10, 6)])], stretch=None)
    image, target, _ = ds[0]
    flip = RandomFlip(1.0, horizontal=horizontal)
    out, boxes = flip(image, target["boxes"], torch.Generator().manual_seed(0))
    expected = [34.0, 2, 44, 8] if horizontal else [4.0, 24, 14, 30]
    assert boxes.tolist() == [expected]
    x0, y0, x1, y1 = (int(v) for v in expected)
    # the lit pixels are exactly the flipped box
    mask = torch.zeros(32, 48)
    mask[y0:y1, x0:x1] = 1
    torch.testing.assert_close(out[0], mask)


def test_transpose_moves_boxes_with_the_image():
    ds = DetectionDataset([_dict(0, [(4, 2, 10, 6)])], stretch=None)
    image, target, _ = ds[0]
    out, boxes = RandomTranspose(1.0)(image, target["boxes"], torch.Generator().manual_seed(0))
    assert out.shape == (3, 48, 32) and boxes.tolist() == [[2.0, 4, 8, 14]]
    mask = torch.zeros(48, 32)
    mask[4:14, 2:8] = 1  # the lit pixels are exactly the transposed box
    torch.testing.assert_close(out[0], mask)


def test_augmentation_sets_by_name():
    dicts = [_dict(i, [(4, 2, 10, 6)]) for i in range(2)]
    loader = build_detection_train_loader(
        dataset=dicts, total_batch_size=2, augment="geometric", num_workers=0
    )
    augs = loader.dataset.augmentations
    assert [type(a) for a in augs] == [RandomFlip, RandomFlip, RandomTranspose]
    with pytest.raises(ValueError, match="'blurry' is not one of"):
        build_detection_train_loader(dataset=dicts, total_batch_size=2, augment="blurry")


def test_photometric_augmentations_keep_range_and_boxes():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 20, 20)
    boxes = torch.tensor([[1.0, 2, 5, 6]])
    for aug in (RandomGaussianBlur(1.0), RandomContrast(1.0), RandomColorJitter(1.0)):
        out, b = aug(image, boxes, g)
        assert out.shape == image.shape and not torch.equal(out, image)
        assert float(out.min()) >= 0 and float(out.max()) <= 1
        assert torch.equal(b, boxes)


def test_train_loader_is_seeded_and_resumable():
    dicts = [_dict(i, [(i, 1, 5, 5)]) for i in range(5)]

    def take(loader, n):
        it = iter(loader)
        return [[t["image_id"] for t in next(it)[1]] for _ in range(n)]

    kw = dict(dataset=dicts, total_batch_size=2, stretch=None, num_workers=0, seed=3)
    a = build_detection_train_loader(**kw)
    ids = take(a, 6)
    assert a.state_dict()["batches"] == 6
    assert ids == take(build_detection_train_loader(**kw), 6)  # same seed, same stream
    assert sorted(sum(ids[:2], []) + ids[2][:1]) == [0, 1, 2, 3, 4]  # an epoch is a permutation
    b = build_detection_train_loader(**kw)
    b.load_state_dict({"batches": 4, "total_batch_size": 2, "seed": 3})
    assert take(b, 2) == ids[4:6]
    # augmentations are per sample: the same images come out of the resumed stream
    a2, b2 = build_detection_train_loader(**kw), build_detection_train_loader(**kw)
    b2.load_state_dict({"batches": 1, "total_batch_size": 2})
    it_a, it_b = iter(a2), iter(b2)
    next(it_a)
    for x, y in zip(next(it_a)[0], next(it_b)[0]):
        assert torch.equal(x, y)


def test_sampler_shards_are_the_single_process_stream():
    one = TrainingSampler(7, seed=1)
    it = iter(one)
    stream = [next(it) for _ in range(20)]
    shards = [iter(TrainingSampler(7, seed=1, rank=r, world_size=2)) for r in range(2)]
    merged = [next(shards[k % 2]) for k in range(20)]
    assert merged == stream


def test_fraction_uses_a_seeded_subset():
    dicts = [_dict(i, [(1, 1, 5, 5)]) for i in range(20)]
    loader = build_detection_train_loader(
        dataset=dicts, total_batch_size=2, stretch=None, fraction=0.5, num_workers=0, seed=0
    )
    again = build_detection_train_loader(
        dataset=dicts, total_batch_size=2, stretch=None, fraction=0.5, num_workers=0, seed=0
    )
    ids = [d["image_id"] for d in loader.dataset.dicts]
    assert len(ids) == 10 and ids == [d["image_id"] for d in again.dataset.dicts]
    with pytest.raises(ValueError, match="fraction"):
        build_detection_train_loader(dataset=dicts, fraction=0.0, num_workers=0)


def test_images_without_boxes_are_counted(caplog):
    dicts = [_dict(i, [(1, 1, 5, 5)] if i % 2 else []) for i in range(6)]
    dicts[1]["annotations"].append(
        {"bbox": [3, 3, 0, 4], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0}
    )
    with caplog.at_level(logging.INFO):
        loader = build_detection_train_loader(
            dataset=dicts, total_batch_size=2, stretch=None, num_workers=0
        )
    assert len(loader.dataset) == 3 and loader.dataset.num_skipped_empty == 3
    assert "skipped 3 of 6 training images that have no boxes" in caplog.text
    assert "dropped 1 boxes with zero width or height" in caplog.text
    kept = build_detection_train_loader(
        dataset=dicts, total_batch_size=2, stretch=None, num_workers=0, filter_empty=False
    )
    assert len(kept.dataset) == 6
    _, targets, _ = next(iter(kept))
    assert all(t["boxes"].shape[1] == 4 for t in targets)
    with pytest.raises(ValueError, match="none of the 3 training images has a box"):
        build_detection_train_loader(dataset=dicts[::2], stretch=None, num_workers=0)


def test_size_mismatch_names_the_file(tmp_path):
    path = tmp_path / "field_007.npy"
    np.save(path, np.random.rand(32, 40).astype(np.float32))
    d = {"file_name": str(path), "height": 32, "width": 48, "image_id": 0, "annotations": []}
    ds = DetectionDataset([d], stretch="zscale")
    with pytest.raises(ValueError, match=r"field_007\.npy is 32x40 .* say 32x48"):
        ds[0]


def test_missing_image_file_is_named(tmp_path):
    d = {"file_name": str(tmp_path / "gone.npy"), "height": 8, "width": 8, "image_id": 0}
    with pytest.raises(FileNotFoundError, match="gone.npy"):
        DetectionDataset([d])


def test_test_loader_keeps_order_and_empty_images():
    dicts = [_dict(i, [(1, 1, 5, 5)] if i != 1 else []) for i in range(3)]
    loader = build_detection_test_loader(dataset=dicts, batch_size=2, stretch=None)
    batches = list(loader)
    assert [[d["image_id"] for d in b[2]] for b in batches] == [[0, 1], [2]]
    assert batches[0][1][1]["boxes"].shape == (0, 4)


def test_total_batch_size_must_split_across_ranks():
    with pytest.raises(ValueError, match="total_batch_size"):
        build_detection_train_loader(dataset=[_dict(0, [(1, 1, 2, 2)])], total_batch_size=0)
