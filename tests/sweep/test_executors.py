"""The SLURM side without a cluster: the sbatch script submitit writes for a point (through
stand-in sbatch/srun commands), the pickled job, and its requeue on preemption."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from astrodet.sweep import TrainPoint, expand_grid, job_parameters, load_grid, make_executor

submitit = pytest.importorskip("submitit")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """``sbatch`` that keeps the script it is given and answers a job id; ``srun`` beside it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kept = tmp_path / "sbatch_script.sh"
    for name in ("sbatch", "srun"):
        path = bin_dir / name
        path.write_text(f'#!/bin/sh\ncp "$1" {kept}\necho "Submitted batch job 4242"\n')
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return kept


def test_slurm_job_of_a_point(fake_slurm, tmp_path):
    grid = load_grid(REPO / "configs" / "grids" / "mgcls_paper.py")
    point = expand_grid(grid)[5]
    params = job_parameters(grid_defaults=grid.slurm, partition="gpu", nodes=2, gpus_per_node=4,
                            account="radio", qos="high", constraint="a100", mem_gb=100)  # fmt: skip
    out = tmp_path / "sweep"
    executor = make_executor("slurm", folder=out / ".submitit", params=params)
    job = executor.submit(point, out / point.name)
    assert job.job_id == "4242"
    script = fake_slurm.read_text()
    for line in ("--partition=gpu", "--nodes=2", "--gpus-per-node=4", "--ntasks-per-node=4",
                 "--cpus-per-task=8", "--time=720", "--account=radio", "--qos=high",
                 "--constraint=a100", "--mem=100GB", f"--job-name={point.name}",
                 "--signal=USR2@"):  # fmt: skip
        assert f"#SBATCH {line}" in script, line
    # the job runs tools/train_net.py --resume into the point's folder
    delayed = submitit.helpers.DelayedSubmission.load(
        out / ".submitit" / "4242" / "4242_submitted.pkl"
    )
    fn = delayed.function
    assert isinstance(fn, TrainPoint)
    assert fn.argv[:3] == ["--config-file", str(point.config), "--resume"]
    assert fn.argv[-1] == f"train.output_dir='{out / point.name}'"
    assert point.overrides == fn.argv[3:-1]


def test_preempted_job_requeues_the_same_resuming_call():
    fn = TrainPoint(["--config-file", "x.py", "--resume", "train.seed=1"])
    again = fn.checkpoint()
    assert isinstance(again, submitit.helpers.DelayedSubmission)
    assert isinstance(again.function, TrainPoint) and again.function.argv == fn.argv
    assert "--resume" in again.function.argv


def test_no_sbatch_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"sbatch and srun.*--executor local"):
        make_executor("slurm", folder=tmp_path / ".submitit", params=job_parameters())


def test_refused_submission_is_a_failed_point(tmp_path, monkeypatch):
    """sbatch refusing a job (a wrong partition) fails that point; the sweep goes on."""
    from astrodet.sweep import SweepState, run_sweep

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("sbatch", 'echo "invalid partition specified: nope" >&2; exit 1'),
                       ("srun", "exit 0")):  # fmt: skip
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    grid = load_grid(REPO / "configs" / "grids" / "rgz_paper.py")
    points = expand_grid(grid)[:2]
    out = tmp_path / "sweep"
    executor = make_executor(
        "slurm", folder=out / ".submitit", params=job_parameters(partition="nope")
    )
    lines = []
    result = run_sweep(points, output=out, executor=executor, grid_path=grid.path, poll_s=0.01,
                       echo=lines.append)  # fmt: skip
    assert set(result["failed"]) == {p.name for p in points} and not result["done"]
    assert all("invalid partition" in why for why in result["failed"].values())
    assert sum("failed (not submitted)" in line for line in lines) == 2
    assert SweepState(out).counts() == {"queued": 0, "running": 0, "done": 0, "failed": 2}
