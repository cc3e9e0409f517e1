"""tools/benchmark.py in-process on tiny settings: keys, sane values, output folder rules.

No timing is asserted: only that every figure exists, is finite and positive, and that the
two COCO backends agree.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "benchmark.py"

TINY = [
    "--quick",
    "--device",
    "cpu",
    "--threads",
    "1",
    "--repeats",
    "1",
    "--feature-model",
    "resnet18",
    "--feature-images",
    "4",
    "--feature-batch-size",
    "2",
    "--feature-image-size",
    "32",
    "--probe-train",
    "200",
    "--probe-test",
    "40",
    "--probe-fractions",
    "0.5",
    "1.0",
    "--probe-seeds",
    "2",
    "--det-tiny",
    "--det-backbones",
    "vitdet_b",
    "--det-sizes",
    "64",
    "--det-warmup",
    "0",
    "--det-iters",
    "1",
    "--eval-images",
    "30",
    "--eval-boxes",
    "10",
]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmark_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        assert part in d, f"missing key {dotted!r} (at {part!r})"
        d = d[part]
    return d


def _positive(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def tiny_run(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "run"
    assert bench.main([*TINY, "--output", str(out), "--only", "features,probe,detection,eval"]) == 0
    return out, json.loads((out / "benchmark.json").read_text())


def test_every_key_exists_and_is_sane(tiny_run):
    out, res = tiny_run
    for key in (
        "features.overhead_ratio",
        "features.cache_speedup",
        "probe.speedup_fast_vs_paper",
        "probe.speedup_logistic_vs_paper",
        "detection.frozen_over_finetune_step_ratio",
        "eval.speedup_vs_pycocotools",
    ):
        assert _positive(_get(res, key)), (key, _get(res, key))
    for key in ("probe.macro_f1_fast", "probe.macro_f1_logistic", "probe.macro_f1_paper"):
        assert 0.0 <= _get(res, key) <= 1.0, key
    assert 0.0 <= _get(res, "eval.ap50_abs_diff") <= 1e-3
    assert 0.0 < res["eval"]["ap50_pycocotools"] <= 1.0
    step = _get(res, "detection.step_seconds")
    assert list(step) == ["vitdet_b_64"]
    entry = step["vitdet_b_64"]
    assert _positive(entry["frozen"]) and _positive(entry["finetune"])
    assert _positive(entry["inference_images_per_s"])
    # freezing the trunk leaves fewer trainable parameters
    tp = entry["trainable_parameters"]
    assert 0 < tp["frozen"] < tp["finetune"]
    assert entry["frozen_parameters"]["finetune"] == 0
    # 2 fractions x 2 seeds, each timed for the three protocols
    assert len(res["probe"]["runs"]) == 4
    assert all(
        _positive(r[f"{p}_seconds"])
        for r in res["probe"]["runs"]
        for p in ("fast", "logistic", "paper")
    )
    # the figures under the paper's name come from the paper's protocol: 100 epochs, no
    # estimate scaled from a shorter run
    assert res["probe"]["paper_epochs"] == 100
    assert not [k for k in res["probe"] if "estimat" in k]
    assert "about" not in (out / "benchmark.md").read_text()
    dev = res["device"]
    assert dev["device"] == "cpu" and dev["torch"] and dev["cpu"]
    assert dev["torch_threads"] == 1  # --threads 1, recorded
    assert res["quick"] is True
    assert any("synthetic" in n for n in res["notes"])
    from astrodet.data import DatasetCatalog

    # the in-memory galaxy set is gone again: other code sees the usual catalog
    assert not [n for n in DatasetCatalog.list() if n.startswith("benchmark_galaxies")]
    md = (out / "benchmark.md").read_text()
    assert "| eval | AP50 abs diff |" in md and "vitdet_b_64" in md


def test_only_runs_the_chosen_part(bench, tmp_path):
    import torch

    threads = torch.get_num_threads()
    out = tmp_path / "eval_only"
    assert bench.main([*TINY, "--output", str(out), "--only", "eval"]) == 0
    assert torch.get_num_threads() == threads  # --threads does not leak out of main()
    res = json.loads((out / "benchmark.json").read_text())
    assert "eval" in res and not {"features", "probe", "detection"} & set(res)


def test_existing_folder_is_refused_unless_overwrite(bench, tmp_path, caplog):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    args = [*TINY, "--output", str(out), "--only", "eval"]
    assert bench.main(args) == 1
    assert "exists and is not empty" in caplog.text and str(out) in caplog.text
    assert (out / "keep.txt").exists() and not (out / "benchmark.json").exists()
    assert bench.main([*args, "--overwrite"]) == 0
    assert (out / "benchmark.json").exists() and not (out / "keep.txt").exists()


def test_unknown_part_is_an_error(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--only", "eval,speed"])
    err = capsys.readouterr().err
    assert "speed" in err and "features, probe, detection, eval" in err


def test_synthetic_coco_predictions_are_noisy_copies(bench):
    gt, results = bench.evaluation.synthetic_coco(n_images=3, boxes_per_image=4, seed=1)
    assert len(gt["images"]) == 3 and len(gt["annotations"]) == 12
    ids = {img["id"] for img in gt["images"]}
    assert {r["image_id"] for r in results} <= ids
    # 5 false positives per image plus the boxes found
    assert 15 <= len(results) <= 27
    assert all(r["bbox"][2] >= 1 and r["bbox"][3] >= 1 for r in results)


def test_cuda_without_a_gpu_is_an_error(bench, tmp_path, caplog):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert bench.main([*TINY, "--output", str(tmp_path / "o"), "--device", "cuda"]) == 1
    assert "CUDA is not available" in caplog.text


def test_detection_warm_up_runs_until_the_step_time_is_steady(bench):
    """Slow first steps (memory, kernel choice) are not timed: warm-up goes on until three
    successive steps agree, and stops at once when they do."""
    import time

    import torch

    durations = iter([0.4, 0.2, 0.25, 0.1, 0.1, 0.1, 0.1, 0.1])  # long enough to beat jitter
    calls = []

    def step():
        calls.append(1)
        time.sleep(next(durations))

    cpu = torch.device("cpu")
    assert bench.detection.warm_up(step, min_steps=1, device=cpu) == 6 == len(calls)
    assert bench.detection.warm_up(lambda: time.sleep(0.1), min_steps=0, device=cpu) == 0
    n = bench.detection.warm_up(lambda: time.sleep(0.1), min_steps=4, device=cpu)
    assert n == 4  # steady from the start: the asked-for steps only


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    from tiny_project import make_tiny_project

    return make_tiny_project(tmp_path_factory.mktemp("step"), n_train=6, n_test=2)


def test_gpu_part_on_a_cpu_skips_with_the_reason_and_times_the_step(
    bench, tmp_path, tiny_config, monkeypatch
):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "gpu"
    args = ["--device", "cpu", "--only", "gpu", "--output", str(out), "--step-iters", "3",
            "--step-warmup", "1", "--step-config", str(tiny_config)]  # fmt: skip
    assert bench.main(args) == 0
    res = json.loads((out / "benchmark.json").read_text())
    g = res["gpu"]
    for key in ("training", "probe_features", "bare_trunk", "ddp"):
        assert "no CUDA device" in g[key]["skipped"], key
    step = g["step_overhead"]
    assert 0.0 <= step["overhead_fraction"] <= 1.0
    assert step["iterations"] == 3 and step["device"] == "cpu"
    ph = step["phase_seconds_per_iteration"]
    assert all(_positive(ph[p]) for p in ("forward", "backward", "step"))
    # the phases fit inside the iteration they were timed in
    assert sum(ph.values()) <= step["seconds_per_iteration"] * 1.001
    md = (out / "benchmark.md").read_text()
    assert "| gpu | training images/s fp32 / bf16, GPU busy | skipped | no CUDA device" in md
    assert "| gpu | training step outside forward/backward/step (cpu) |" in md
    assert any("GPU rows not measured here" in n for n in res["notes"])


def test_gpu_skip_reasons(bench, monkeypatch):
    import torch

    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "no CUDA device" in bench.gpu.skip_reason(cpu)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert "--device cuda" in bench.gpu.skip_reason(cpu)
    assert bench.gpu.skip_reason(torch.device("cuda")) is None
    assert bench.gpu.batch_for(256, 16) == 16 and bench.gpu.batch_for(512, 16) == 4
    assert bench.gpu.batch_for(1024, 2) == 1


def test_wall_phase_timer_sums_each_phase(bench):
    import time

    timer = bench.gpu.step_part.WallPhaseTimer()
    for _ in range(2):
        with timer.phase("forward"):
            time.sleep(0.01)
    with timer.phase("step"):
        pass
    s = timer.seconds()
    assert 0.02 <= s["forward"] < 0.5 and s["backward"] == 0.0 and s["step"] < 0.01
    timer.reset()
    assert timer.seconds()["forward"] == 0.0


def test_gpu_path_needs_no_astropy_fvcore_or_pycocotools():
    """The modules the GPU rows import load with astropy, fvcore, pycocotools and omegaconf
    missing (a GPU machine may lack them). astrodet.modeling is not among them yet: it
    imports fvcore's schedulers, so there the training rows say that fvcore is missing."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for m in ('astropy', 'fvcore', 'pycocotools', 'faster_coco_eval', 'omegaconf',"
        " 'hydra', 'photutils', 'regions'):\n"
        "    sys.modules[m] = None\n"
        "sys.path.insert(0, 'tools')\n"
        "import bench.gpu, bench.step, bench.detection, bench.features\n"
        "import astrodet.engine, astrodet.zoo, astrodet.data.synthetic, probe.features\n"
        "from astrodet.utils.precision import resolve_precision\n"
        "print('imported')\n"
    )
    root = TOOL.parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "imported" in proc.stdout, proc.stderr[-2000:]


@pytest.mark.slow
def test_ddp_row_through_torchrun_on_two_cpu_processes(bench):
    r = bench.gpu.bench_ddp(
        nproc=2, device="cpu", size=64, batch=1, warmup=1, steps=2, tiny=True, timeout=300
    )
    assert "error" not in r, r.get("error")
    assert r["world_size"] == 2 and r["backend"] == "gloo"
    assert _positive(r["images_per_s"]) and r["command"].startswith("torchrun --standalone")


def test_gpu_rows_logic_on_a_cpu(bench):
    """The GPU rows' own code, run on a CPU with tiny models (a GPU machine is not here)."""
    import torch

    cpu = torch.device("cpu")
    t = bench.gpu.bench_gpu_training(
        device=cpu, backbones=("vitdet_b",), sizes=(128,), batch_at_256=1, warmup=1, steps=1,
        repeats=1, tiny=True,
    )  # fmt: skip
    r = t["vitdet_b_128"]
    assert r["batch"] == 4 and set(r["images_per_s"]) == {"fp32", "bf16"}
    assert all(_positive(v) for v in r["images_per_s"].values())
    assert all(0.0 < v <= 1.0 for v in r["gpu_busy_fraction"].values())
    f = bench.gpu.bench_gpu_probe_features(
        device=cpu, n_images=6, batch_size=4, image_size=32, repeats=1,
        model_kwargs={"embed_dim": 32, "depth": 1, "num_heads": 2},
    )  # fmt: skip
    assert set(f["images_per_s"]) == {"fp32", "bf16", "fp16"}
    assert all(_positive(v) for v in f["images_per_s"].values())
    md = "\n".join(bench.gpu.rows({"gpu": {"training": t, "probe_features": f}}))
    assert "vitdet_b_128 training images/s fp32 / bf16" in md and "fp32 / bf16 / fp16" in md
