"""tools/sweep.py end to end on a tiny simulated sky: a 2 x 2 grid through the local and the
submitit-local executors, kill-and-rerun, a failing point, the dry-run job parameters and
clear errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_project import make_tiny_project

REPO = Path(__file__).resolve().parents[2]
SWEEP = REPO / "tools" / "sweep.py"

TINY_SETTINGS = """
model.rpn_pre_nms_top_n_train = 100
model.rpn_post_nms_top_n_train = 50
model.box_batch_size_per_image = 32

train.max_iter = 2
train.eval_period = 0
train.checkpoint_period = 1
train.num_threads = 1
"""

GRID_2X2 = """
config = "configs/tiny.py"
axes = {"model.backbone.freeze": ["backbone", "none"], "train.seed": [0, 1]}
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A folder with tiny data, ``configs/tiny.py`` (beside a link to configs/common)."""
    root = tmp_path_factory.mktemp("sweep")
    make_tiny_project(root, n_train=4, n_test=2, settings=TINY_SETTINGS)
    return root


def _grid(root: Path, text: str, name: str) -> Path:
    path = root / f"{name}.py"
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _sweep(*args: str) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, str(SWEEP), *args], capture_output=True, text=True, timeout=600
    )
    return proc.returncode, proc.stdout, proc.stderr


def _state(out: Path) -> dict:
    return json.loads((out / "sweep.json").read_text())["points"]


def _losses(run: Path) -> list[int]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r["iteration"] for r in map(json.loads, lines) if "total_loss" in r]


NAMES_2X2 = {
    "freeze=backbone,seed=0",
    "freeze=backbone,seed=1",
    "freeze=none,seed=0",
    "freeze=none,seed=1",
}


def _check_2x2(out: Path) -> None:
    from astrodet.config import LazyConfig
    from astrodet.sweep import run_finished

    assert {p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")} == NAMES_2X2
    for name in NAMES_2X2:
        run = out / name
        assert run_finished(run), name
        cfg = LazyConfig.load(run / "config.yaml")
        freeze, seed = (kv.split("=")[1] for kv in name.split(","))
        assert cfg.model.backbone.freeze == freeze and cfg.train.seed == int(seed)
        assert cfg.train.output_dir == str(run)
        assert _losses(run) == [1, 2]
    assert {r["state"] for r in _state(out).values()} == {"done"}


@pytest.mark.slow
def test_local_2x2_then_rerun_skips_and_report(root, tmp_path):
    grid = _grid(root, GRID_2X2, "grid2x2")
    out = tmp_path / "local"
    rc, stdout, stderr = _sweep("--grid", str(grid), "--output", str(out), "--max-parallel", "2")
    assert rc == 0, stdout + stderr
    _check_2x2(out)
    assert stdout.count(": done in ") == 4 and "4 done (0 finished earlier, 4 now)" in stdout
    assert (out / "freeze=none,seed=1" / "console.txt").read_text()
    finals = {n: (out / n / "model_final.pth").stat().st_mtime_ns for n in NAMES_2X2}

    rc, stdout, _ = _sweep("--grid", str(grid), "--output", str(out))
    assert rc == 0 and "4 done (4 finished earlier, 0 now)" in stdout
    assert finals == {n: (out / n / "model_final.pth").stat().st_mtime_ns for n in NAMES_2X2}

    # the report's table is the runs' metrics.json, one row per run
    report = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "report.py"), str(out), "--output", str(report)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    import csv

    rows = list(csv.DictReader((report / "runs.csv").open()))
    assert len(rows) == 4
    for row in rows:
        metrics = json.loads((Path(row["run"]) / "metrics.json").read_text())
        expected = metrics["bbox/AP50"]
        assert (row["bbox/AP50"] == "") if expected is None else float(row["bbox/AP50"]) == expected
        assert row["mode"] == ("fine-tuned" if "freeze=none" in row["run"] else "frozen")
        assert row["dataset"] == "tinysky" and row["complete"] == "True"
    assert (report / "figure4.png").stat().st_size > 0
    assert "tinysky" in (report / "summary.md").read_text()


@pytest.mark.slow
def test_submitit_local_2x2(root, tmp_path):
    pytest.importorskip("submitit")
    grid = _grid(root, GRID_2X2, "grid2x2_submitit")
    out = tmp_path / "submitit"
    rc, stdout, stderr = _sweep("--grid", str(grid), "--output", str(out), "--executor",
                                "submitit-local", "--max-parallel", "2", "--poll-s", "0.5")  # fmt: skip
    assert rc == 0, stdout + stderr
    _check_2x2(out)
    # each point ran as its own submitit job: a process of its own, with its own logs
    ids = {r["job_id"] for r in _state(out).values()}
    assert len(ids) == 4 and all(r["executor"] == "submitit-local" for r in _state(out).values())
    for job_id in ids:
        assert list((out / ".submitit" / job_id).glob("*_result.pkl")), job_id
    assert (out / ".submitit").is_dir() and str(os.getpid()) not in ids


@pytest.mark.slow
def test_killed_sweep_reruns_only_what_is_left(root, tmp_path):
    grid = _grid(
        root,
        'config = "configs/tiny.py"\naxes = {"train.seed": [0, 1, 2]}\n'
        'overrides = ["model.backbone.freeze=none", "train.max_iter=40", "train.checkpoint_period=2"]\n',
        "grid_kill",
    )
    out = tmp_path / "killed"
    cmd = [sys.executable, str(SWEEP), "--grid", str(grid), "--output", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = out / "seed=1"
    deadline = time.time() + 300
    while not (second / "model_0000004.pth").exists():
        assert proc.poll() is None, "the sweep ended before it was killed"
        assert time.time() < deadline, "no checkpoint of the second point within 300 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # its training process dies with it: no metrics from the second point appear
    child = int(_state(out)["seed=1"]["job_id"])
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"training process {child} outlived the killed sweep")
    assert not (out / "seed=2").exists() and not (second / "model_final.pth").exists()
    first_final = (out / "seed=0" / "model_final.pth").stat().st_mtime_ns

    rc, stdout, stderr = _sweep("--grid", str(grid), "--output", str(out))
    assert rc == 0, stdout + stderr
    assert "3 done (1 finished earlier, 2 now)" in stdout
    assert "seed=1: queued (resumes from its last checkpoint)" in stdout
    assert (out / "seed=0" / "model_final.pth").stat().st_mtime_ns == first_final
    assert _losses(second) == list(range(1, 41))  # continued, not restarted
    assert "resumes" not in stdout.split("seed=2: queued")[1].split("\n")[0]
    # the second run of the point started where the killed one had saved
    starts = re.findall(r"training from iteration (\d+) to 40", (second / "log.txt").read_text())
    assert len(starts) == 2 and starts[0] == "0" and int(starts[1]) >= 4, starts


@pytest.mark.slow
def test_failing_point_does_not_stop_the_others(root, tmp_path):
    grid = _grid(
        root, 'config = "configs/tiny.py"\naxes = {"train.num_threads": [-1, 1]}\n', "grid_fail"
    )
    out = tmp_path / "fail"
    rc, stdout, stderr = _sweep("--grid", str(grid), "--output", str(out))
    assert rc == 1, stdout + stderr
    assert "1 done (0 finished earlier, 1 now), 1 failed" in stdout
    failed_part = stdout.split("failed: num_threads=-1")[1]
    assert "train.num_threads must be a positive integer" in failed_part
    state = _state(out)
    assert (
        state["num_threads=-1"]["state"] == "failed" and state["num_threads=1"]["state"] == "done"
    )
    assert "positive integer" in state["num_threads=-1"]["error"]


# ----------------------------------------------------------------------------- no runs
def _main(argv):
    import importlib.util

    spec = importlib.util.spec_from_file_location("sweep_under_test", SWEEP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def _fails(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        _main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert ": error: " in err.split("\n")[0] and err.count("\n") == 1
    return err


def test_dry_run_job_parameters_mgcls(tmp_path, capsys):
    out = tmp_path / "mgcls"
    options = {"--partition": "gpu-a100", "--nodes": "2", "--gpus-per-node": "4",
               "--cpus-per-task": "12", "--timeout-min": "600", "--account": "radio",
               "--qos": "high", "--constraint": "a100", "--mem-gb": "256"}  # fmt: skip
    argv = ["--grid", str(REPO / "configs" / "grids" / "mgcls_paper.py"), "--output", str(out),
            "--executor", "slurm", "--dry-run", *[x for kv in options.items() for x in kv]]  # fmt: skip
    assert _main(argv) == 0
    stdout = capsys.readouterr().out
    (line,) = [x for x in stdout.splitlines() if x.startswith("job parameters: ")]
    params = json.loads(line.removeprefix("job parameters: "))
    assert params == {
        "slurm_partition": "gpu-a100",
        "nodes": 2,
        "gpus_per_node": 4,
        "tasks_per_node": 4,  # one DDP process per GPU
        "cpus_per_task": 12,
        "timeout_min": 600,
        "slurm_account": "radio",
        "slurm_qos": "high",
        "slurm_constraint": "a100",
        "mem_gb": 256,
    }
    points = [x for x in stdout.splitlines() if x.startswith("[")]
    assert len(points) == 6 * 2 * 4 * 3 and points[-1].startswith("[144/144] ")
    assert "config=mgcls_r18_fpn,freeze=none,fraction=1.0,seed=2,subset=2" in points[-1]
    assert not out.exists()  # a dry run writes nothing


def test_dry_run_takes_grid_defaults(tmp_path, capsys):
    argv = ["--grid", str(REPO / "configs" / "grids" / "rgz_paper.py"), "--output",
            str(tmp_path / "r"), "--executor", "slurm", "--dry-run", "--qos", "low"]  # fmt: skip
    assert _main(argv) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("job parameters")][0]
    params = json.loads(line.split(": ", 1)[1])
    assert params["timeout_min"] == 720 and params["gpus_per_node"] == 1  # the grid's
    assert params["slurm_qos"] == "low" and params["slurm_partition"] is None


def test_unknown_key_is_named_before_anything_runs(root, tmp_path, capsys):
    grid = _grid(
        root, 'config = "configs/tiny.py"\naxes = {"model.backbone.frezee": ["none"]}\n', "bad"
    )
    out = tmp_path / "bad"
    err = _fails(capsys, ["--grid", str(grid), "--output", str(out)])
    assert "'model.backbone.frezee' does not exist" in err and "model.backbone.freeze" in err
    assert not out.exists()


def test_extra_override_unknown_key(root, tmp_path, capsys):
    grid = _grid(root, GRID_2X2, "grid2x2_extra")
    err = _fails(
        capsys, ["--grid", str(grid), "--output", str(tmp_path / "x"), "train.max_iters=3"]
    )
    assert "train.max_iters" in err and "Did you mean" in err


def test_colliding_folder_names(root, tmp_path, capsys):
    grid = _grid(
        root,
        'config = "configs/tiny.py"\naxes = {"model.backbone.trunk": ["a/b", "a_b"]}\n',
        "clash",
    )
    err = _fails(capsys, ["--grid", str(grid), "--output", str(tmp_path / "c")])
    assert "trunk=a_b" in err and "both get the folder name" in err


def test_slurm_without_sbatch(root, tmp_path, capsys, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch there
    grid = _grid(root, GRID_2X2, "grid2x2_slurm")
    out = tmp_path / "s"
    err = _fails(capsys, ["--grid", str(grid), "--output", str(out), "--executor", "slurm"])
    assert "sbatch" in err and "--executor local" in err
    assert not (out / "sweep.json").exists()


@pytest.mark.slow
def test_submitit_job_trains_with_ddp_over_its_tasks(root, tmp_path):
    """Two tasks in one submitit job form one DDP group (gloo on CPU), from submitit's
    environment, as GPUs of a SLURM node do."""
    pytest.importorskip("submitit")
    import torch

    if torch.cuda.is_available():
        pytest.skip("CPU processes stand for GPUs only on a machine without CUDA")
    grid = _grid(root, 'config = "configs/tiny.py"\naxes = {"train.seed": [0]}\n', "grid_ddp")
    out = tmp_path / "ddp"
    rc, stdout, stderr = _sweep("--grid", str(grid), "--output", str(out), "--executor",
                                "submitit-local", "--gpus-per-node", "2", "--poll-s", "0.5")  # fmt: skip
    assert rc == 0, stdout + stderr
    run = out / "seed=0"
    assert "processes: 2" in (run / "log.txt").read_text()
    assert _losses(run) == [1, 2]
    final = torch.load(run / "model_final.pth", map_location="cpu", weights_only=True)
    assert len(final["rng"]) == 2  # both ranks' RNG states: one group of two
    job_id = _state(out)["seed=0"]["job_id"]
    assert len(list((out / ".submitit" / job_id).glob("*_log.err"))) == 2  # two tasks


def test_rerun_keeps_the_job_options_given_before(root, tmp_path, capsys):
    from astrodet.sweep import SweepState, expand_grid, load_grid

    grid = _grid(root, GRID_2X2, "grid2x2_options")
    out = tmp_path / "opts"
    out.mkdir()
    SweepState(out).register(expand_grid(load_grid(grid)), grid=grid, executor="slurm",
                             options={"partition": "p1", "gpus_per_node": 2})  # fmt: skip

    def params(*more):
        argv = ["--grid", str(grid), "--output", str(out), "--executor", "slurm", "--dry-run"]
        assert _main([*argv, *more]) == 0
        (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("job param")]
        return json.loads(line.split(": ", 1)[1])

    assert params()["slurm_partition"] == "p1" and params()["tasks_per_node"] == 2
    assert params("--partition", "p2")["slurm_partition"] == "p2"
