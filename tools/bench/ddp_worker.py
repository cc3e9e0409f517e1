"""One process of the benchmark's DDP row, started by ``torchrun`` (see ``bench.gpu``):
trains a benchmark detector under ``DistributedDataParallel`` for a few steps and, on rank
0, writes the images/s of all processes together to ``--output`` as json.

Needs torch, timm, numpy and the project only.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

# the benchmark's parts live beside this file, in tools/bench/
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from astrodet.engine import SimpleTrainer, comm
    from astrodet.utils import atomic_write_json
    from bench.common import sync
    from bench.detection import build_benchmark_detector, detection_batch

    if args.device == "cuda":
        device = torch.device("cuda", comm.get_local_rank())
    else:
        device = torch.device("cpu")
    torch.manual_seed(0)  # the same initial weights on every rank
    model = build_benchmark_detector(
        backbone=args.backbone, freeze="none", image_size=args.size, tiny=args.tiny
    ).to(device)
    world = comm.get_world_size()
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=ids)
    images, targets, dicts = detection_batch(n=args.batch, size=args.size, seed=comm.get_rank())
    if device.type == "cuda":
        images = [im.pin_memory() for im in images]
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.1
    )
    trainer = SimpleTrainer(
        model,
        itertools.repeat((images, targets, dicts)),
        optimizer,
        device=device,
        precision=args.precision,
        log_period=max(1, args.steps),
    )
    trainer.train(0, max(1, args.warmup))
    sync(device)
    comm.synchronize()
    start = time.perf_counter()
    trainer.train(0, args.steps)
    sync(device)
    comm.synchronize()
    seconds = time.perf_counter() - start
    if comm.is_main_process():
        atomic_write_json(
            args.output,
            {
                "world_size": world,
                "backend": dist.get_backend() if world > 1 else "none (one process)",
                "device": str(device.type),
                "backbone": args.backbone,
                "size": args.size,
                "batch": args.batch,
                "steps": args.steps,
                "precision": trainer.precision,
                "seconds": seconds,
                "images_per_s": world * args.batch * args.steps / seconds,
            },
        )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--output", required=True, help="json file written by rank 0")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--backbone", default="vitdet_b")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=16, help="images per process and step")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--precision", default="bf16")
    p.add_argument("--tiny", action="store_true", help="tiny models (tests)")
    return p.parse_args(argv)


if __name__ == "__main__":
    from astrodet.engine import launch

    launch(main, args=(parse(),))
