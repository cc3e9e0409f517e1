"""The GPU table: training images/s in fp32 and bf16 with the fraction of wall time the GPU
is busy, probe feature images/s per precision from the decoded-image cache, the bare
ViT-B/16 trunk, and DDP through ``torchrun`` on the GPUs there are; and on every machine the
CPU row: how much of a training step is spent outside forward, backward and the optimizer
step (:mod:`bench.step`).

On a machine without CUDA the GPU rows are skipped, each with the reason. The GPU rows need
torch, timm, numpy and the project only (no astropy, fvcore or pycocotools): where a module
the project imports is missing, the row says which.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from . import step as step_part
from .common import fmt, logger, median, quiet, ratio, release, time_interleaved

GPU_BACKBONES = ("vitdet_b", "r50_fpn")
PRECISIONS = ("fp32", "bf16")
FEATURE_PRECISIONS = ("fp32", "bf16", "fp16")
DDP_WORKER = Path(__file__).resolve().parent / "ddp_worker.py"


def skip_reason(device: torch.device) -> str | None:
    """Why the GPU rows cannot run on ``device`` (None: they can)."""
    if device.type == "cuda":
        return None
    if not torch.cuda.is_available():
        return "no CUDA device on this machine (torch.cuda.is_available() is False)"
    return f"--device {device}: the GPU rows run with --device cuda (or auto)"


def _skipped(reason: str) -> dict[str, str]:
    return {"skipped": reason}


def _failure(e: BaseException) -> dict[str, str]:
    if isinstance(e, ImportError):
        return _skipped(f"needs the module {e.name or e} (not installed here)")
    return {"error": f"{type(e).__name__}: {e}"}


def batch_for(size: int, batch_at_256: int) -> int:
    """Images per step at ``size`` px: ``batch_at_256`` scaled by the area, at least 1."""
    return max(1, round(batch_at_256 * (256 / size) ** 2))


def _pinned(batch, device: torch.device):
    """Page-locked images on a GPU machine, so each step's copy does not block the host."""
    images, targets, dicts = batch
    if device.type != "cuda":
        return batch
    return [im.pin_memory() for im in images], targets, dicts


def bench_gpu_training(
    *,
    device: torch.device,
    backbones=GPU_BACKBONES,
    sizes=(256, 512),
    batch_at_256: int = 16,
    warmup: int = 3,
    steps: int = 5,
    repeats: int = 3,
    tiny: bool = False,
) -> dict[str, Any]:
    """Fine-tuning images/s of each detector in fp32 and bf16 autocast, and the fraction of
    the wall time inside forward, backward and the optimizer step on the GPU (CUDA events;
    an upper bound of the time the GPU is busy).

    Args:
        device: a CUDA device.
        backbones: ``vitdet_b`` (4conv1fc head, 512 RoIs per image) and/or ``r50_fpn``.
        sizes: input sizes in px.
        batch_at_256: images per step at 256 px, scaled by the area at other sizes.
        warmup: untimed steps per precision first (kernel choice, allocator).
        steps: steps per timed round; the host meets the GPU only at the end of a round
            (and at the trainer's log period).
        repeats: timed rounds, fp32 and bf16 alternating.
        tiny: tiny models (tests).
    """
    from .detection import build_benchmark_detector, detection_batch

    out: dict[str, Any] = {}
    for backbone in backbones:
        for size in sizes:
            key = f"{backbone}_{size}"
            n = batch_for(size, batch_at_256)
            try:
                out[key] = _bench_training_one(
                    build=lambda b=backbone, s=size: build_benchmark_detector(
                        backbone=b, freeze="none", image_size=s, tiny=tiny
                    ),
                    batch=_pinned(detection_batch(n=n, size=size), device),
                    n=n,
                    device=device,
                    warmup=warmup,
                    steps=steps,
                    repeats=repeats,
                    desc=key,
                )
            except (RuntimeError, ImportError, ValueError, FloatingPointError) as e:  # OOM, no bf16
                logger.error("gpu training %s failed: %s", key, e)
                out[key] = _failure(e)
            release(device)
    return out


def _bench_training_one(*, build, batch, n, device, warmup, steps, repeats, desc):
    from astrodet.engine import SimpleTrainer

    model = build().to(device)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.1
    )
    trainers, timers = {}, {}
    for precision in PRECISIONS:
        t = SimpleTrainer(
            model,
            itertools.repeat(batch),
            optimizer,
            device=device,
            precision=precision,
            log_period=20,
        )
        timers[precision] = t.step_timer = step_part.phase_timer(device)
        trainers[precision] = t
    with quiet("astrodet.engine.train_loop"):
        for t in trainers.values():
            t.train(0, warmup)
        for timer in timers.values():
            timer.reset()
        times = time_interleaved(
            {p: (lambda t=t: t.train(0, steps)) for p, t in trainers.items()},
            repeats=repeats,
            device=device,
            desc=f"{desc} train",
        )
    med = {p: median(v) for p, v in times.items()}
    busy = {p: ratio(sum(timers[p].seconds().values()), sum(times[p])) for p in PRECISIONS}
    return {
        "batch": n,
        "steps_per_round": steps,
        "images_per_s": {p: n * steps / med[p] for p in PRECISIONS},
        "gpu_busy_fraction": {p: min(1.0, busy[p]) for p in PRECISIONS},
        "bf16_speedup": ratio(med["fp32"], med["bf16"]),
        "seconds": times,
    }


def bench_gpu_features(
    *, device: torch.device, batch_size: int = 64, repeats: int = 3
) -> dict[str, Any]:
    """ViT-B/16 (random init) bare trunk throughput at 224 px, fp32 against bf16 autocast."""
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


def bench_gpu_probe_features(
    *,
    device: torch.device,
    n_images: int = 4096,
    batch_size: int = 256,
    image_size: int = 224,
    repeats: int = 3,
    model: str = "dino",
    model_kwargs: dict | None = None,
) -> dict[str, Any]:
    """Images/s of ``probe.features`` per precision with the images read from the
    decoded-image cache (filled once first), the feature cache cleared before every run.

    Args:
        device: where the trunk runs.
        n_images: simulated 64 px galaxies, resized to ``image_size``.
        batch_size: images per forward pass.
        image_size: model input size.
        repeats: timed rounds, the precisions alternating.
        model: zoo trunk (random initialisation).
        model_kwargs: architecture kwargs (tiny trunks in tests).
    """
    from probe.features import extract_features

    from .features import _reuse_built_trunks, registered_galaxy_set

    with (
        registered_galaxy_set(n_images) as dataset,
        tempfile.TemporaryDirectory(prefix="astrodet-bench-gpu-") as cache_dir,
        _reuse_built_trunks(),
        quiet("probe"),
    ):
        common = dict(
            model=model,
            dataset=dataset,
            split="train",
            weights="none",
            image_size=image_size,
            stretch=None,
            batch_size=batch_size,
            device=str(device),
            cache_dir=cache_dir,
            model_kwargs=model_kwargs,
        )
        start = time.perf_counter()
        extract_features(**common, precision="fp32")  # decodes and fills the cache
        decode_seconds = time.perf_counter() - start

        def run(precision):
            shutil.rmtree(Path(cache_dir) / "features", ignore_errors=True)
            extract_features(**common, precision=precision)

        for p in FEATURE_PRECISIONS[1:]:
            run(p)  # warm-up of each precision's kernels
        times = time_interleaved(
            {p: (lambda p=p: run(p)) for p in FEATURE_PRECISIONS},
            repeats=repeats,
            device=device,
            desc="probe features",
        )
    med = {p: median(v) for p, v in times.items()}
    return {
        "model": model,
        "n_images": n_images,
        "image_size": image_size,
        "batch_size": batch_size,
        "images_per_s": {p: n_images / med[p] for p in FEATURE_PRECISIONS},
        "first_run_seconds_with_decoding": decode_seconds,
        "seconds": times,
    }


def bench_ddp(
    *,
    nproc: int,
    device: str = "cuda",
    backbone: str = "vitdet_b",
    size: int = 256,
    batch: int = 16,
    warmup: int = 3,
    steps: int = 10,
    precision: str = "bf16",
    tiny: bool = False,
    timeout: float = 600,
) -> dict[str, Any]:
    """Training images/s through ``torchrun`` with ``nproc`` processes (one per GPU, NCCL;
    gloo on a CPU), ``batch`` images per process: the command users run for DDP.

    Returns:
        the rank-0 worker's result (``images_per_s``, ``world_size``, ``backend``) and the
        command, or ``error`` with the end of its output.
    """
    with tempfile.TemporaryDirectory(prefix="astrodet-bench-ddp-") as tmp:
        result = Path(tmp) / "ddp.json"
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", str(DDP_WORKER), "--output", str(result),
            "--device", device, "--backbone", backbone, "--size", str(size),
            "--batch", str(batch), "--warmup", str(warmup), "--steps", str(steps),
            "--precision", precision, *(["--tiny"] if tiny else []),
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"error": f"torchrun did not finish in {timeout:.0f} s"}
        shown = " ".join(["torchrun", *cmd[3:]]).replace(str(result), "OUT.json")
        if proc.returncode != 0 or not result.exists():
            tail = (proc.stderr or proc.stdout)[-1500:]
            return {"error": f"torchrun exited {proc.returncode}: {tail}", "command": shown}
        out = json.loads(result.read_text())
    out["command"] = shown
    return out


def run(s: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The part with the benchmark's resolved settings ``s``."""
    out: dict[str, Any] = {}
    reason = skip_reason(device)
    if reason:
        for key in ("training", "probe_features", "bare_trunk", "ddp"):
            out[key] = _skipped(reason)
    else:
        out["device_name"] = torch.cuda.get_device_name(device)
        out["gpus"] = torch.cuda.device_count()
        out["training"] = bench_gpu_training(
            device=device,
            backbones=s["gpu_backbones"],
            sizes=s["gpu_sizes"],
            batch_at_256=s["gpu_batch"],
            warmup=s["gpu_warmup"],
            steps=s["gpu_steps"],
            repeats=s["repeats"],
            tiny=s["det_tiny"],
        )
        for key, fn in (
            (
                "probe_features",
                lambda: bench_gpu_probe_features(
                    device=device,
                    n_images=s["gpu_feature_images"],
                    batch_size=s["gpu_feature_batch"],
                    repeats=s["repeats"],
                ),
            ),
            (
                "bare_trunk",
                lambda: bench_gpu_features(
                    device=device, batch_size=s["gpu_feature_batch"], repeats=s["repeats"]
                ),
            ),
        ):
            try:
                out[key] = fn()
            except (RuntimeError, ImportError, ValueError) as e:
                logger.error("gpu %s failed: %s", key, e)
                out[key] = _failure(e)
            release(device)
        out["ddp"] = bench_ddp(
            nproc=out["gpus"],
            size=256,
            batch=batch_for(256, s["gpu_batch"]),
            steps=s["gpu_ddp_steps"],
            tiny=s["det_tiny"],
        )
    try:
        out["step_overhead"] = step_part.bench_step_overhead(
            config=s["step_config"] or step_part.STEP_CONFIG,
            iters=s["step_iters"],
            warmup=s["step_warmup"],
            # the CPU row: the loop's own cost where the CPU configs train
            overrides=["train.device=cpu"],
        )
    except ImportError as e:  # e.g. a GPU machine without the config machinery's modules
        out["step_overhead"] = _failure(e)
    return out


def _status(r: dict) -> str | None:
    if "skipped" in r:
        return f"skipped | {r['skipped']}"
    if "error" in r:
        return f"failed | {r['error']}"
    return None


def rows(results: dict[str, Any]) -> list[str]:
    """Rows of the Markdown table for this part of a ``benchmark.json`` dict."""
    g = results.get("gpu")
    if not g:
        return []
    out = []
    training = g.get("training", {})
    if _status(training):
        out.append(f"| gpu | training images/s fp32 / bf16, GPU busy | {_status(training)} |")
    elif training:
        for key, r in training.items():
            if _status(r):
                out.append(f"| gpu | {key} training | {_status(r)} |")
                continue
            ips, busy = r["images_per_s"], r["gpu_busy_fraction"]
            out.append(
                f"| gpu | {key} training images/s fp32 / bf16 | {fmt(ips['fp32'])} / "
                f"{fmt(ips['bf16'])} | bf16 {fmt(r['bf16_speedup'])}x; GPU busy at most "
                f"{fmt(100 * busy['fp32'], '.0f')} % / {fmt(100 * busy['bf16'], '.0f')} % of the "
                f"wall time (CUDA events); batch {r['batch']}, fine-tuned, random init |"
            )
    pf = g.get("probe_features", {})
    if _status(pf):
        out.append(f"| gpu | probe features images/s per precision | {_status(pf)} |")
    elif pf:
        ips = pf["images_per_s"]
        out.append(
            f"| gpu | probe features images/s fp32 / bf16 / fp16 | "
            f"{' / '.join(fmt(ips[p]) for p in FEATURE_PRECISIONS)} | {pf['model']} at "
            f"{pf['image_size']} px from the decoded-image cache, {pf['n_images']} images, "
            f"batch {pf['batch_size']} |"
        )
    bare = g.get("bare_trunk", {})
    if _status(bare):
        out.append(f"| gpu | ViT-B/16 224 px bare trunk images/s | {_status(bare)} |")
    elif bare:
        out.append(
            f"| gpu | ViT-B/16 224 px bare trunk images/s fp32 / bf16 | "
            f"{fmt(bare['vit_b16_224_images_per_s_fp32'])} / "
            f"{fmt(bare['vit_b16_224_images_per_s_bf16'])} | bf16 "
            f"{fmt(bare['bf16_speedup_features'])}x; batch {bare['batch_size']} |"
        )
    ddp = g.get("ddp", {})
    if _status(ddp):
        out.append(f"| gpu | DDP through torchrun | {_status(ddp)} |")
    elif ddp:
        out.append(
            f"| gpu | DDP through torchrun, images/s | {fmt(ddp['images_per_s'])} | "
            f"{ddp['world_size']} process(es), {ddp['backend']}, {ddp['precision']}, "
            f"{ddp['backbone']} {ddp['size']} px, batch {ddp['batch']} per process |"
        )
    out += step_part.rows(results)
    d = results.get("detection")
    if d and "bf16_speedup" in d:
        out.append(f"| gpu | detection step fp32 / bf16 | {fmt(d['bf16_speedup'])}x | fine-tuned |")
    return out


__all__ = [
    "bench_ddp",
    "bench_gpu_features",
    "bench_gpu_probe_features",
    "bench_gpu_training",
    "rows",
    "run",
    "skip_reason",
]
