"""Faster R-CNN training step, frozen against fine-tuned backbone; inference images/s."""

from __future__ import annotations

import contextlib
import itertools
import time
from typing import Any

import numpy as np
import torch

from .common import fmt, geomean, logger, median, params, ratio, release, sync, time_interleaved

# Warm-up ends once this many successive steps agree within WARMUP_TOLERANCE (relative), and
# after at most WARMUP_EXTRA steps beyond the asked-for ones: on CPU the first steps of a
# model allocate memory and pick kernels, for several steps with a frozen R50-FPN (18, 9,
# 11, then 2.6-3.3 s per step in one run), which would land in the timed medians otherwise.
WARMUP_STEADY = 3
WARMUP_TOLERANCE = 0.25
WARMUP_EXTRA = 10

BACKBONES = ("vitdet_b", "r50_fpn")


# ViTDet-B as configs/common/models/vitdet.py builds it (windowed attention, relative
# positions, drop path when fine-tuning; 2-conv RPN, LayerNorm 4conv1fc box head)
VITDET_BACKBONE = dict(window_size=14, use_rel_pos=True, drop_path_rate=0.1)
VITDET_HEADS = dict(rpn_head_convs=2, box_head="4conv1fc", box_head_norm="LN")

TINY_TRUNK = dict(embed_dim=32, depth=2, num_heads=2, img_size=32)
TINY_HEADS = dict(
    representation_size=64,
    rpn_batch_size_per_image=64,
    box_batch_size_per_image=64,
    rpn_post_nms_top_n_train=200,
    rpn_post_nms_top_n_test=200,
)


def build_benchmark_detector(
    *, backbone: str, freeze: str, image_size: int, tiny: bool = False
) -> torch.nn.Module:
    """A one-class Faster R-CNN on a random-init ``vitdet_b`` (ViT-B/16 + simple feature
    pyramid, ViTDet's attention and heads) or ``r50_fpn`` backbone; ``tiny`` shrinks trunk
    and heads (tests)."""
    from astrodet.modeling import build_detector, build_resnet_fpn_backbone, build_vit_backbone

    out_channels = 32 if tiny else 256
    if backbone == "vitdet_b":
        bb = build_vit_backbone(
            trunk="dino",
            weights="none",
            freeze=freeze,
            image_size=image_size,
            out_channels=out_channels,
            trunk_kwargs=dict(TINY_TRUNK) if tiny else None,
            **VITDET_BACKBONE,
        )
        heads = dict(VITDET_HEADS)
    elif backbone == "r50_fpn":
        bb = build_resnet_fpn_backbone(
            trunk="resnet50", weights="none", freeze=freeze, out_channels=out_channels
        )
        heads = {}
    else:
        raise ValueError(f"unknown backbone {backbone!r}; valid: {', '.join(BACKBONES)}")
    heads.update(TINY_HEADS if tiny else {})
    return build_detector(backbone=bb, num_classes=1, image_size=image_size, **heads)


def detection_batch(*, n: int, size: int, seed: int = 0):
    """``n`` simulated radio fields of ``size`` px as a train-loader batch
    ``(images, targets, dicts)`` (zscale-stretched, 3 channels, XYXY boxes, labels 1)."""
    from astrodet.data import to_rgb
    from astrodet.data.synthetic import make_radio_field
    from astrodet.structures import BoxMode

    rng = np.random.default_rng(seed)
    images, targets, dicts = [], [], []
    for i in range(n):
        image, anns, _ = make_radio_field(rng, size=size)
        rgb = to_rgb(image, stretch="zscale")
        images.append(torch.from_numpy(rgb).permute(2, 0, 1).contiguous())
        boxes = BoxMode.convert(
            np.asarray([a["bbox"] for a in anns], np.float32).reshape(-1, 4),
            BoxMode.XYWH_ABS,
            BoxMode.XYXY_ABS,
        )
        targets.append(
            {
                "boxes": torch.from_numpy(boxes),
                "labels": torch.ones(len(boxes), dtype=torch.int64),
                "image_id": i,
            }
        )
        dicts.append({"image_id": i, "height": size, "width": size})
    return images, targets, dicts


def _trainer(model, batch, device, *, amp=False, optimizer=None):
    from astrodet.engine import SimpleTrainer
    from astrodet.modeling import get_optimizer_params

    if optimizer is None:
        # the configs' AdamW recipe (configs/common/optim.py)
        params = get_optimizer_params(model=model, base_lr=1e-4, weight_decay=0.1)
        optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1)
    return SimpleTrainer(model, itertools.repeat(batch), optimizer, device=device, amp=amp)


def warm_up(step, *, min_steps: int, device: torch.device) -> int:
    """Run ``step`` until its time per call is steady: at least ``min_steps`` calls, then
    until the last :data:`WARMUP_STEADY` agree within :data:`WARMUP_TOLERANCE`, at most
    :data:`WARMUP_EXTRA` more. ``min_steps=0``: no warm-up.

    Returns:
        the number of calls made.
    """
    if min_steps <= 0:
        return 0
    seconds: list[float] = []
    while len(seconds) < min_steps + WARMUP_EXTRA:
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        seconds.append(time.perf_counter() - start)
        last = seconds[-WARMUP_STEADY:]
        steady = len(last) == WARMUP_STEADY and max(last) <= (1 + WARMUP_TOLERANCE) * min(last)
        if len(seconds) >= min_steps and steady:
            break
    return len(seconds)


def _bench_one_detector(*, backbone, size, batch_size, warmup, iters, device, tiny, seed):
    from astrodet.modeling import count_parameters

    models = {
        mode: build_benchmark_detector(
            backbone=backbone, freeze=freeze, image_size=size, tiny=tiny
        ).to(device)
        for mode, freeze in (("frozen", "backbone"), ("finetune", "none"))
    }
    params = {mode: count_parameters(m) for mode, m in models.items()}
    batch = detection_batch(n=batch_size, size=size, seed=seed)
    trainers = {mode: _trainer(m, batch, device) for mode, m in models.items()}
    if device.type == "cuda":
        trainers["finetune_bf16"] = _trainer(
            models["finetune"], batch, device, amp=True, optimizer=trainers["finetune"].optimizer
        )
    warmup_steps = {
        mode: warm_up(t.run_step, min_steps=warmup, device=device) for mode, t in trainers.items()
    }
    times = time_interleaved(
        {mode: t.run_step for mode, t in trainers.items()},
        repeats=iters,
        device=device,
        desc=f"{backbone} {size}px train",
    )
    step = {mode: median(v) for mode, v in times.items()}
    # inference: one architecture whatever is frozen; the frozen model is timed
    model = models["frozen"].eval()
    images = [im.to(device) for im in batch[0]]

    def infer(amp=False):
        ctx = torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            model(images)

    infer_fns = {"fp32": infer}
    if device.type == "cuda":
        infer_fns["bf16"] = lambda: infer(amp=True)
        # lazily loaded kernels; on CPU the training steps above already warmed the layers
        for fn in infer_fns.values():
            fn()
    itimes = time_interleaved(
        infer_fns, repeats=iters, device=device, desc=f"{backbone} {size}px inference"
    )
    out = {
        **step,
        "frozen_over_finetune": ratio(step["frozen"], step["finetune"]),
        "warmup_steps": warmup_steps,
        "inference_images_per_s": batch_size / median(itimes["fp32"]),
        "trainable_parameters": {m: p["trainable"] for m, p in params.items()},
        "frozen_parameters": {m: p["frozen"] for m, p in params.items()},
        "seconds": {**times, **{f"inference_{k}": v for k, v in itimes.items()}},
    }
    if "finetune_bf16" in step:
        out["bf16_speedup"] = ratio(step["finetune"], step["finetune_bf16"])
        out["inference_images_per_s_bf16"] = batch_size / median(itimes["bf16"])
    return out


def bench_detection(
    *,
    backbones=BACKBONES,
    sizes=(224, 512),
    batch_size: int = 2,
    warmup: int = 1,
    iters: int = 3,
    device: torch.device,
    tiny: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Seconds per training iteration, frozen against fine-tuned backbone, per backbone and
    input size; inference images/s; trainable parameter counts.

    Args:
        backbones: ``vitdet_b`` and/or ``r50_fpn`` (random initialisation).
        sizes: input sizes in px (simulated radio fields of that size).
        batch_size: images per iteration.
        warmup: untimed iterations per model first, at least; more until the step time is
            steady (:func:`warm_up`; the counts are in ``warmup_steps``). 0: none.
        iters: timed iterations per model, frozen and fine-tuned alternating.
        device: where the models train.
        tiny: tiny trunk and heads (tests).
        seed: seed of the simulated fields.
    """
    step_seconds: dict[str, Any] = {}
    for backbone in backbones:
        for size in sizes:
            key = f"{backbone}_{size}"
            logger.info("detection %s: batch %d, %d+%d iterations", key, batch_size, warmup, iters)
            try:
                step_seconds[key] = _bench_one_detector(
                    backbone=backbone,
                    size=size,
                    batch_size=batch_size,
                    warmup=warmup,
                    iters=iters,
                    device=device,
                    tiny=tiny,
                    seed=seed,
                )
            except (RuntimeError, FloatingPointError) as e:  # e.g. out of memory: keep the rest
                logger.error("detection %s failed: %s", key, e)
                step_seconds[key] = {"error": f"{type(e).__name__}: {e}"}
                release(device)
                continue
            release(device)
            r = step_seconds[key]
            logger.info(
                "detection %s: %.3f s frozen, %.3f s fine-tuned per iteration (ratio %.2f); "
                "%.2f images/s inference",
                key,
                r["frozen"],
                r["finetune"],
                r["frozen_over_finetune"],
                r["inference_images_per_s"],
            )
    ok = [r for r in step_seconds.values() if "error" not in r]
    out: dict[str, Any] = {
        "weights": "none",
        "tiny": tiny,
        "batch_size": batch_size,
        "warmup": warmup,
        "iters": iters,
        "optimizer": "AdamW (configs/common/optim.py)",
        # one number over every backbone and size: their geometric mean
        "frozen_over_finetune_step_ratio": geomean([r["frozen_over_finetune"] for r in ok]),
        "step_seconds": step_seconds,
    }
    if any("bf16_speedup" in r for r in ok):
        out["bf16_speedup"] = geomean([r.get("bf16_speedup") for r in ok])
    return out


def run(s: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The part with the benchmark's resolved settings ``s``."""
    return bench_detection(
        backbones=s["det_backbones"],
        sizes=s["det_sizes"],
        batch_size=s["det_batch"],
        warmup=s["det_warmup"],
        iters=s["det_iters"],
        device=device,
        tiny=s["det_tiny"],
        seed=s["seed"],
    )


def rows(results: dict[str, Any]) -> list[str]:
    """Rows of the Markdown table for this part of a ``benchmark.json`` dict."""
    d = results.get("detection")
    if not d:
        return []
    out = [
        f"| detection | step time frozen / fine-tuned | "
        f"{fmt(d['frozen_over_finetune_step_ratio'])} | geometric mean; batch "
        f"{d['batch_size']}, {d['iters']} timed iterations, random init"
        f"{' (tiny models)' if d.get('tiny') else ''} |"
    ]
    for key, r in d["step_seconds"].items():
        if "error" in r:
            out.append(f"| detection | {key} | failed | {r['error']} |")
            continue
        tp = r["trainable_parameters"]
        bf16 = f"; bf16 step {fmt(r['bf16_speedup'])}x faster" if "bf16_speedup" in r else ""
        out.append(
            f"| detection | {key}: s/iteration frozen / fine-tuned | "
            f"{fmt(r['frozen'])} / {fmt(r['finetune'])} ({fmt(r['frozen_over_finetune'])}) | "
            f"trainable {params(tp['frozen'])} / {params(tp['finetune'])}; inference "
            f"{fmt(r['inference_images_per_s'])} images/s{bf16} |"
        )
    return out
