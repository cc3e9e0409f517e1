"""tools/compare_catalogues.py end to end: metrics.json, the figure, errors in one line."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sky"))
from test_crossmatch import make_pair  # noqa: E402

from astrodet.sky.catalogue import write_catalogue  # noqa: E402

TOOL = Path(__file__).resolve().parents[2] / "tools" / "compare_catalogues.py"


def _tool():
    spec = importlib.util.spec_from_file_location("compare_catalogues_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_writes_metrics_and_figure(tmp_path):
    ref, cat = make_pair()
    write_catalogue(ref, tmp_path / "ref", formats=["fits"])
    write_catalogue(cat, tmp_path / "cat", formats=["csv"])
    out = tmp_path / "cmp"
    argv = [
        "--reference",
        str(tmp_path / "ref.fits"),
        "--catalog",
        str(tmp_path / "cat.csv"),
        "--output",
        str(out),
    ]
    assert _tool().main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # The radius comes from the reference's beam (6"): half of it, 3".
    assert metrics["radius_arcsec"] == 3.0 and "reference" in metrics["radius_from"]
    assert (metrics["n_reference"], metrics["n_catalog"], metrics["n_matched"]) == (6, 7, 4)
    assert metrics["snr_bins"][0]["n_reference"] == 2
    assert (out / "completeness.png").stat().st_size > 1000
    assert len(Table.read(out / "matches.csv", format="ascii.csv")) == 4
    # An existing folder needs --overwrite; --radius-arcsec wins over the beam.
    with pytest.raises(SystemExit):
        _tool().main(argv)
    assert _tool().main([*argv, "--overwrite", "--radius-arcsec", "3.5"]) == 0
    assert json.loads((out / "metrics.json").read_text())["n_matched"] == 5


def test_missing_columns_is_a_one_line_error(tmp_path, capsys):
    Table({"name": ["a"], "flux": [1.0]}).write(tmp_path / "bad.csv", format="ascii.csv")
    ref, _ = make_pair()
    write_catalogue(ref, tmp_path / "ref", formats=["fits"])
    argv = [
        "--reference",
        str(tmp_path / "ref.fits"),
        "--catalog",
        str(tmp_path / "bad.csv"),
        "--output",
        str(tmp_path / "o"),
    ]
    with pytest.raises(SystemExit) as e:
        _tool().main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("compare_catalogues") or "error:" in err[-1]
    assert "bad.csv" in err[-1] and "name, flux" in err[-1]
    assert not (tmp_path / "o").exists()


def test_missing_image_is_a_one_line_error(tmp_path, capsys):
    ref, cat = make_pair()
    write_catalogue(ref, tmp_path / "ref", formats=["fits"])
    write_catalogue(cat, tmp_path / "cat", formats=["fits"])
    argv = ["--reference", str(tmp_path / "ref.fits"), "--catalog", str(tmp_path / "cat.fits")]
    with pytest.raises(SystemExit) as e:
        _tool().main([*argv, "--output", str(tmp_path / "o"), "--image", str(tmp_path / "no.fits")])
    assert e.value.code == 2
    assert "no.fits" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "o").exists()


def test_island_level_score_in_metrics_and_summary(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sky"))
    from test_crossmatch import _islands

    ref, cat = _islands()
    write_catalogue(ref, tmp_path / "ref", formats=["fits"])
    write_catalogue(cat, tmp_path / "cat", formats=["csv"])
    argv = ["--reference", str(tmp_path / "ref.fits"), "--catalog", str(tmp_path / "cat.csv")]
    assert _tool().main([*argv, "--output", str(tmp_path / "o"), "--radius-arcsec", "3"]) == 0
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["n_matched"] == 1 and metrics["completeness"] == pytest.approx(0.25)
    assert (metrics["n_islands"], metrics["n_islands_found"]) == (3, 2)
    assert metrics["island_completeness"] == pytest.approx(2 / 3)
    printed = json.loads(capsys.readouterr().out)
    assert printed["island_completeness"] == pytest.approx(2 / 3)
    assert printed["completeness"] == pytest.approx(0.25)


def test_real_pybdsf_gaussians_find_every_island_of_its_sources(real_data, tmp_path):
    # PyBDSF's Gaussian list against its own source list: several Gaussians per source, so
    # not every Gaussian has a source of its own, but every island is found and most extra
    # Gaussians lie on their island (two of one wide three-Gaussian source lie beyond both
    # its FWHM ellipse and theirs)
    folder = real_data / "pybdsf_test"
    argv = [
        "--reference",
        str(folder / "catalogue.srl.FITS"),
        "--catalog",
        str(folder / "catalogue.gaul.FITS"),
        "--output",
        str(tmp_path / "o"),
        "--beam",
        "54",
        "54",
        "0",
    ]
    assert _tool().main(argv) == 0
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    n_islands = len(np.unique(Table.read(folder / "catalogue.srl.FITS")["Isl_id"]))
    assert m["n_islands"] == n_islands and m["island_completeness"] == 1.0
    assert m["n_catalog"] == 48 and m["n_matched"] <= 43 and m["reliability"] < 0.9
    assert m["n_catalog_on_islands"] >= 46 and m["island_reliability"] > m["reliability"]
