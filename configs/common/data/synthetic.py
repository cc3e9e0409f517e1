"""The simulated MGCLS-like sky (``astrodet.data.synthetic``, kind ``sky``): 256 px
float fields shown at their native size. Generated on first use under
``datasets_root()/synthetic/sky`` by the registered ``synthetic_sky_{train,test}`` sets."""

from astrodet.config import LazyCall as L
from astrodet.data.detection import build_detection_test_loader, build_detection_train_loader
from astrodet.data.synthetic import load_synthetic
from astrodet.evaluation import COCOEvaluator

dataloader = dict(
    train=L(build_detection_train_loader)(
        dataset=L(load_synthetic)(kind="sky", split="train"),
        total_batch_size=4,
        image_size=256,
        stretch="zscale",
        fraction=1.0,
        augment=True,
        # loading and stretching a 256 px field takes milliseconds: worker processes would
        # only take CPU time from the model step on a small machine
        num_workers=0,
        seed=0,
    ),
    test=L(build_detection_test_loader)(
        dataset=L(load_synthetic)(kind="sky", split="test"),
        batch_size=1,
        image_size=256,
        stretch="zscale",
        num_workers=0,
    ),
    evaluator=L(COCOEvaluator)(
        dataset="${..test.dataset}",
        thing_classes=["source"],
        output_dir=None,
    ),
)
