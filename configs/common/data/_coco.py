"""Shared builder of the data configs: a COCO json + image folder per split."""

from astrodet.config import LazyCall as L
from astrodet.data.coco import load_coco_json
from astrodet.data.detection import build_detection_test_loader, build_detection_train_loader
from astrodet.evaluation import COCOEvaluator


def coco_dataloader(*, folder, name, image_size, stretch, loader=load_coco_json):
    """``dataloader`` (train, test, evaluator) over ``folder/{train,test}/annotations.json``
    with images in ``folder/{train,test}/images``; paths are plain strings fixed when the
    config is loaded (``$ASTRODET_DATASETS`` is read then), overridable as the fields
    ``dataloader.{train,test}.dataset.json_file`` and ``.image_root``.

    Args:
        folder: the data set's folder.
        name: registered name: each split's classes go to the metadata of ``<name>_<split>``
            and the evaluator reads ``<name>_test``'s. None: no metadata; the evaluator takes
            the classes from the test json.
        image_size, stretch: of both loaders.
        loader: reads one split from ``json_file`` and ``image_root`` (and
            ``dataset_name``): ``load_coco_json``, or one that makes the files first.
    """
    names = {s: {"dataset_name": f"{name}_{s}"} if name else {} for s in ("train", "test")}
    split = {
        s: L(loader)(
            json_file=str(folder / s / "annotations.json"),
            image_root=str(folder / s / "images"),
            **names[s],
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
            dataset_name=f"{name}_test" if name else None,
            dataset="${..test.dataset}",
            output_dir=None,
        ),
    )
