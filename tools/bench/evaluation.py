"""faster-coco-eval against pycocotools on the same synthetic detections."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .common import fmt, median, ratio, time_interleaved


def synthetic_coco(
    *, n_images: int, boxes_per_image: int, size: int = 512, seed: int = 0
) -> tuple[dict, list[dict]]:
    """COCO ground truth (two categories) and noisy predictions: 85 % of the boxes found with
    10 % jitter and random scores, plus 5 false positives per image.

    Returns:
        ``(gt COCO json dict, COCO results list)``.
    """
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    for i in range(1, n_images + 1):
        images.append({"id": i, "width": size, "height": size, "file_name": f"{i:06d}.png"})
        xy = rng.uniform(0, size - 40, (boxes_per_image, 2))
        wh = rng.uniform(4, 40, (boxes_per_image, 2))
        cats = rng.integers(1, 3, boxes_per_image)
        found = rng.random(boxes_per_image) < 0.85
        jitter = rng.normal(0.0, 0.1, (boxes_per_image, 4)) * np.concatenate([wh, wh], 1)
        scores = rng.uniform(0.3, 1.0, boxes_per_image)
        for k in range(boxes_per_image):
            box = [*xy[k], *wh[k]]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(cats[k]),
                    "bbox": [float(v) for v in box],
                    "area": float(wh[k, 0] * wh[k, 1]),
                    "iscrowd": 0,
                }
            )
            if found[k]:
                pred = np.asarray(box) + jitter[k]
                pred[2:] = np.maximum(pred[2:], 1.0)
                results.append(
                    {
                        "image_id": i,
                        "category_id": int(cats[k]),
                        "bbox": [float(v) for v in pred],
                        "score": float(scores[k]),
                    }
                )
        for _ in range(5):
            results.append(
                {
                    "image_id": i,
                    "category_id": int(rng.integers(1, 3)),
                    "bbox": [
                        *map(float, rng.uniform(0, size - 40, 2)),
                        *map(float, rng.uniform(4, 40, 2)),
                    ],
                    "score": float(rng.uniform(0.0, 0.6)),
                }
            )
    categories = [{"id": 1, "name": "compact"}, {"id": 2, "name": "extended"}]
    return {"images": images, "annotations": anns, "categories": categories}, results


def bench_eval(
    *, n_images: int, boxes_per_image: int, repeats: int = 3, seed: int = 0
) -> dict[str, Any]:
    """faster-coco-eval against pycocotools through ``evaluate_coco`` on the same data.

    Args:
        n_images: images of synthetic ground truth.
        boxes_per_image: ground-truth boxes per image.
        repeats: timed rounds (both backends each round, alternating order).
        seed: seed of the synthetic data.
    """
    import faster_coco_eval  # noqa: F401  (imported before timing, as pycocotools below)
    import pycocotools.cocoeval  # noqa: F401

    from astrodet.evaluation import evaluate_coco

    gt, results = synthetic_coco(n_images=n_images, boxes_per_image=boxes_per_image, seed=seed)
    metrics: dict[str, dict] = {}

    def run(backend):
        metrics[backend] = evaluate_coco(gt=gt, results=results, backend=backend)

    times = time_interleaved(
        {b: (lambda b=b: run(b)) for b in ("pycocotools", "faster")},
        repeats=repeats,
        device=torch.device("cpu"),
        desc="eval",
    )
    med = {k: median(v) for k, v in times.items()}
    ap50 = {b: metrics[b]["AP50"] for b in metrics}
    ap = {b: metrics[b]["AP"] for b in metrics}
    return {
        "n_images": n_images,
        "boxes_per_image": boxes_per_image,
        "n_detections": len(results),
        "pycocotools_seconds": med["pycocotools"],
        "faster_seconds": med["faster"],
        "speedup_vs_pycocotools": ratio(med["pycocotools"], med["faster"]),
        "ap50_pycocotools": ap50["pycocotools"],
        "ap50_faster": ap50["faster"],
        "ap50_abs_diff": abs(ap50["faster"] - ap50["pycocotools"]),
        "ap_abs_diff": abs(ap["faster"] - ap["pycocotools"]),
        "seconds": times,
    }


def run(s: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The part with the benchmark's resolved settings ``s`` (CPU only: ``device`` unused)."""
    return bench_eval(
        n_images=s["eval_images"],
        boxes_per_image=s["eval_boxes"],
        repeats=s["repeats"],
        seed=s["seed"],
    )


def rows(results: dict[str, Any]) -> list[str]:
    """Rows of the Markdown table for this part of a ``benchmark.json`` dict."""
    e = results.get("eval")
    if not e:
        return []
    return [
        f"| eval | faster-coco-eval speedup vs pycocotools | "
        f"{fmt(e['speedup_vs_pycocotools'])}x | {e['n_images']} images x "
        f"{e['boxes_per_image']} boxes: {fmt(e['faster_seconds'])} s vs "
        f"{fmt(e['pycocotools_seconds'])} s |",
        f"| eval | AP50 abs diff | {e['ap50_abs_diff']:.2g} | AP50 {e['ap50_faster']:.4f} "
        f"(faster) vs {e['ap50_pycocotools']:.4f}; target <= 1e-3 |",
    ]
