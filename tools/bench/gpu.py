"""On a CUDA GPU: ViT-B/16 feature throughput, fp32 against bf16 autocast."""

from __future__ import annotations

from typing import Any

import torch

from .common import fmt, median, ratio, time_interleaved


def bench_gpu_features(
    *, device: torch.device, batch_size: int = 64, repeats: int = 3
) -> dict[str, Any]:
    """ViT-B/16 (random init) feature throughput at 224 px, fp32 against bf16 autocast."""
    from astrodet.zoo import build_trunk

    trunk = build_trunk("dino", weights="none").to(device).eval()
    x = torch.rand(batch_size, 3, 224, 224, device=device)

    def fp32():
        trunk.features(x)

    def bf16():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            trunk.features(x)

    fp32(), bf16()  # warm-up
    times = time_interleaved(
        {"fp32": fp32, "bf16": bf16}, repeats=repeats, device=device, desc="ViT-B/16 224"
    )
    med = {k: median(v) for k, v in times.items()}
    return {
        "vit_b16_224_images_per_s_fp32": batch_size / med["fp32"],
        "vit_b16_224_images_per_s_bf16": batch_size / med["bf16"],
        "bf16_speedup_features": ratio(med["fp32"], med["bf16"]),
        "batch_size": batch_size,
        "seconds": times,
    }


def run(s: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The part with the benchmark's resolved settings ``s``."""
    return bench_gpu_features(device=device, repeats=s["repeats"])


def rows(results: dict[str, Any]) -> list[str]:
    """Rows of the Markdown table for this part of a ``benchmark.json`` dict."""
    out = []
    g = results.get("gpu")
    if g:
        out.append(
            f"| gpu | ViT-B/16 224 px features, images/s fp32 / bf16 | "
            f"{fmt(g['vit_b16_224_images_per_s_fp32'])} / "
            f"{fmt(g['vit_b16_224_images_per_s_bf16'])} | bf16 "
            f"{fmt(g['bf16_speedup_features'])}x; batch {g['batch_size']} |"
        )
    d = results.get("detection")
    if d and "bf16_speedup" in d:
        out.append(f"| gpu | detection step fp32 / bf16 | {fmt(d['bf16_speedup'])}x | fine-tuned |")
    return out
