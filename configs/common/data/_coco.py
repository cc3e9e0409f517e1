"""Shared builder of the data configs: a COCO json + image folder per split."""

from astrodet.config import LazyCall as L
from astrodet.data.coco import load_coco_json
from astrodet.data.detection import build_detection_test_loader, build_detection_train_loader
from astrodet.evaluation import COCOEvaluator


def coco_dataloader(*, folder, name, image_size, stretch):
    """``dataloader`` (train, test, evaluator) over ``folder/{train,test}/annotations.json``
    with images in ``folder/{train,test}/images``; paths are plain strings fixed when the
    config is loaded (``$ASTRODET_DATASETS`` is read then), overridable as fields."""
    split = {
        s: L(load_coco_json)(
            json_file=str(folder / s / "annotations.json"),
            image_root=str(folder / s / "images"),
            dataset_name=f"{name}_{s}",
        )
        for s in ("train", "test")
    }
    return dict(
        train=L(build_detection_train_loader)(
            dataset=split["train"],
            total_batch_size=16,
            image_size=image_size,
            stretch=stretch,
            fraction=1.0,
            augment=True,  # flips with boxes, random blur, contrast, colour jitter
            num_workers=4,
            seed=0,
        ),
        test=L(build_detection_test_loader)(
            dataset=split["test"],
            batch_size=1,
            image_size=image_size,
            stretch=stretch,
            num_workers=2,
        ),
        evaluator=L(COCOEvaluator)(
            dataset_name=f"{name}_test",
            dataset="${..test.dataset}",
            output_dir=None,
        ),
    )
