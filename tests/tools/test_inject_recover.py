"""tools/inject_recover.py end to end on small simulated fields: the classical finder (and
PyBDSF and a tiny random-init detector, slow), the files it writes, an existing output
folder refused, a field without beam counted and reported."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from astrodet.sky import read_catalogue

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import inject_recover  # noqa: E402

NOISE = 1.5e-4


def _field(path, *, seed=0, beam=True, shape=(128, 128)):
    """A FIRST-like field: 1.8"/px, 5.4" beam, 150 uJy/beam noise, two bright sources."""
    rng = np.random.default_rng(seed)
    data = rng.normal(0, NOISE, shape).astype(np.float32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    sigma = 3.0 / 2.3548
    for x, y in [(30, 40), (90, 100)]:
        data += 30 * NOISE * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    h = fits.Header()
    h["CTYPE1"], h["CRVAL1"], h["CRPIX1"], h["CDELT1"] = "RA---SIN", 150.0, 64.0, -1.8 / 3600
    h["CTYPE2"], h["CRVAL2"], h["CRPIX2"], h["CDELT2"] = "DEC--SIN", 30.0, 64.0, 1.8 / 3600
    if beam:
        h["BMAJ"], h["BMIN"], h["BPA"] = 5.4 / 3600, 5.4 / 3600, 0.0
    h["BUNIT"] = "JY/BEAM"
    fits.PrimaryHDU(data, h).writeto(path)
    return path


def _run(*args):
    return inject_recover.main([str(a) for a in args])


def test_classical_end_to_end(tmp_path, capsys):
    folder = tmp_path / "fields"
    folder.mkdir()
    _field(folder / "a.fits", seed=0)
    _field(folder / "b.fits", seed=1)
    out = tmp_path / "out"
    args = ["--image", folder, "--finder", "classical", "--n", 8, "--seeds", 2, "--output", out]
    assert _run(*args) == 0
    for name in ("summary.json", "table.md", "completeness.png", "flux.png"):
        assert (out / name).stat().st_size > 0
    assert not (out / "threshold.png").exists()  # no finder with scores
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_fields"] == 2 and summary["settings"]["seeds"] == [0, 1]
    c = summary["finders"]["classical"]
    n_injected = c["aggregates"]["all"]["n_injected"]
    assert n_injected == summary["n_injected"] and 16 < n_injected <= 32
    # bright injected sources are found; the two real ones of each field are not false
    assert c["aggregates"][">=10"]["completeness"] >= 0.9
    assert c["n_original"] >= 4 and c["false_injected"] <= 2
    assert set(c["per_field"]) == {"a", "b"}
    for stem in ("a", "b"):
        d = out / "fields" / stem
        for kind in ("original", "inverted"):
            assert (
                len(read_catalogue(d / f"classical_{kind}.fits"))
                == c["per_field"][stem][f"n_{kind}"]
            )
        for seed in (0, 1):
            truth = read_catalogue(d / f"seed{seed}" / "truth.fits")
            assert len(truth) > 0 and np.isfinite(truth["ra"]).all()
            assert (d / f"seed{seed}" / "truth.csv").is_file()
            assert (d / f"seed{seed}" / "classical_injected.csv").is_file()
            assert not (d / f"seed{seed}" / "injected.fits").exists()  # not kept by default
    # the seeds give other sources; every table number is in the summary
    t0 = read_catalogue(out / "fields" / "a" / "seed0" / "truth.fits")
    t1 = read_catalogue(out / "fields" / "a" / "seed1" / "truth.fits")
    assert not np.allclose(t0["x"][:3], t1["x"][:3])
    table = (out / "table.md").read_text()
    assert "| classical |" in table and "S/N 3-5" in table
    printed = json.loads(capsys.readouterr().out)
    assert printed["classical"]["false_injected"] == c["false_injected"]
    # an existing output folder is refused without --overwrite
    with pytest.raises(SystemExit) as e:
        _run(*args)
    assert e.value.code == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _run(*args, "--overwrite", "--seeds", 1, "--keep-images") == 0
    assert (out / "fields" / "a" / "seed0" / "injected.fits").is_file()
    assert not (out / "fields" / "a" / "seed1").exists()


def test_field_without_beam_is_counted_and_reported(tmp_path, capsys):
    good = _field(tmp_path / "good.fits")
    nobeam = _field(tmp_path / "nobeam.fits", beam=False)
    out = tmp_path / "out"
    assert _run("--image", good, nobeam, "--finder", "classical", "--n", 4, "--output", out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_fields"] == 1
    (failed,) = summary["fields_failed"]
    assert "nobeam.fits" in failed["field"]
    assert "BMAJ" in failed["error"] and "--beam" in failed["error"]
    assert "nobeam.fits" in capsys.readouterr().err
    # only fields without beam: an error exit; with --beam they are scored
    assert (
        _run("--image", nobeam, "--finder", "classical", "--n", 4, "--output", tmp_path / "o2") == 1
    )
    out3 = tmp_path / "o3"
    assert _run("--image", nobeam, "--finder", "classical", "--n", 4, "--beam", 5.4, 5.4, 0,
                "--output", out3) == 0  # fmt: skip
    assert json.loads((out3 / "summary.json").read_text())["n_fields"] == 1


def test_bad_arguments(tmp_path, capsys):
    image = _field(tmp_path / "f.fits")
    with pytest.raises(SystemExit):
        _run("--image", image, "--finder", "detector", "--output", tmp_path / "o")
    assert "--config-file and --weights" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _run("--image", image, "--finder", "classical", "--n", 0, "--output", tmp_path / "o")
    with pytest.raises(SystemExit) as e:
        _run("--image", tmp_path / "none.fits", "--finder", "classical", "--output", tmp_path / "o")
    assert e.value.code == 2 and "none.fits" in capsys.readouterr().err


@pytest.mark.slow
def test_pybdsf_and_a_tiny_detector(tmp_path):
    pytest.importorskip("bdsf")
    import torch

    from astrodet.config import LazyConfig, instantiate

    sys.path.insert(0, str(ROOT / "tests" / "sky"))
    from test_find_sources import CONFIG, TINY

    torch.manual_seed(0)
    cfg = LazyConfig.apply_overrides(LazyConfig.load(str(CONFIG)), list(TINY))
    weights = tmp_path / "model_final.pth"
    torch.save({"model": instantiate(cfg.model).state_dict()}, weights)
    image = _field(tmp_path / "f.fits", shape=(96, 96))
    out = tmp_path / "out"
    args = ["--image", image, "--finder", "pybdsf", "detector", "--config-file", CONFIG]
    args += ["--weights", weights, "--n", 4, "--min-snr", 0, "--output", out, *TINY]
    assert _run(*args) == 0
    summary = json.loads((out / "summary.json").read_text())
    p = summary["finders"]["pybdsf"]
    assert p["aggregates"][">=10"]["completeness"] >= 0.5 and p["failed_runs"] == 0
    d = summary["finders"]["detector"]
    curve = d["threshold_curve"]
    assert [c["threshold"] for c in curve][:2] == [0.05, 0.1] and d["score_thresh"] == 0.5
    # a higher threshold never finds more
    comp = [c["completeness"] for c in curve]
    assert all(a >= b for a, b in zip(comp, comp[1:]))
    assert (out / "threshold.png").stat().st_size > 0
    assert (out / "fields" / "f" / "detector_inverted.fits").is_file()
