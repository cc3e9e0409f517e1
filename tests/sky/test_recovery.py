"""Injection-recovery scoring on hand-made catalogues whose answer is known: completeness per
S/N bin, flux ratios, offsets, false detections on the injected field, inverted-field
detections, the percentage of real detections, the score-threshold curve; a run where one
finder fails on one field."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from astropy.io import fits

from astrodet.sky import new_catalogue
from astrodet.sky.recovery import (
    FieldRecord,
    collect_images,
    count_false,
    match_truth,
    run_injection_recovery,
    score_finder,
    snr_bins,
    threshold_curve,
)
from astrodet.sky.recovery_report import format_table

SNR = [4, 4, 6, 6, 8, 12, 12, 30, 30, 150]
FOUND = [1, 2, 3, 4, 5, 7, 8]  # truth rows the finder finds
RATIO = {1: 2.0, 2: 1.2, 3: 1.0, 4: 0.9, 5: 1.1, 7: 1.0, 8: 0.96}


def _cat(x, y, **cols):
    return new_catalogue(x=np.asarray(x, float), y=np.asarray(y, float), **cols)


def _record(beam_areas=1e4, seeds=(0,)):
    truth = _cat(
        np.arange(10) * 20.0 + 20, np.full(10, 50.0), snr=np.array(SNR, float),
        total_flux=np.ones(10),
    )  # fmt: skip
    # found ones 0.5 px (1") off; one at a real source of the original field; two new ones
    xs = [20.0 + 20 * i + 0.5 for i in FOUND] + [300.0, 400.0, 420.0]
    scores = [0.9, 0.3, 0.3, 0.9, 0.9, 0.9, 0.9] + [0.9, 0.2, 0.2]
    flux = [RATIO[i] for i in FOUND] + [1.0, 1.0, 1.0]
    injected = _cat(xs, np.full(len(xs), 50.0), total_flux=np.array(flux), score=np.array(scores))
    original = _cat([300.0, 500.0, 600.0], [50.0] * 3, score=np.full(3, 0.9))
    inverted = _cat([250.0], [50.0], score=np.array([0.4]))
    return FieldRecord(
        name="f",
        beam_areas=beam_areas,
        radius=3.0,  # arcsec: 1.5 px at 2"/px
        pixel_scale=2.0,
        original=original,
        inverted=inverted,
        injected={s: (truth, injected) for s in seeds},
        seconds=2.0,
        megapixels=4.0,
    )


def test_match_truth_and_false_detections():
    rec = _record()
    truth, cat = rec.injected[0]
    m = match_truth(truth, cat, radius=3.0, pixel_scale=2.0)
    assert np.flatnonzero(m["found"]).tolist() == FOUND
    np.testing.assert_allclose(m["offset"][FOUND], 1.0)  # 0.5 px at 2"/px
    np.testing.assert_allclose(m["flux_ratio"][FOUND], [RATIO[i] for i in FOUND])
    assert m["matched"].sum() == len(FOUND)
    # the detection at the original's source is real; the two others are false
    assert count_false(cat, m["matched"], rec.original, radius=3.0, pixel_scale=2.0) == 2
    assert count_false(cat, m["matched"], None, radius=3.0, pixel_scale=2.0) == 3


def test_scores_pooled_over_seeds():
    s = score_finder([_record(seeds=(0, 1))])
    b = s["bins"]
    assert list(b) == ["3-5", "5-7", "7-10", "10-20", "20-100"]
    expected = {"3-5": (4, 2), "5-7": (4, 4), "7-10": (2, 2), "10-20": (4, 2), "20-100": (4, 4)}
    for name, (n, k) in expected.items():
        assert (b[name]["n_injected"], b[name]["n_found"]) == (n, k)
        assert b[name]["completeness"] == pytest.approx(k / n)
        assert b[name]["completeness_low"] <= k / n <= b[name]["completeness_high"]
    # Wilson interval: inside (0, 1) and not degenerate at k = n
    assert 0.5 < b["5-7"]["completeness_low"] < 1.0 == pytest.approx(b["5-7"]["completeness_high"])
    a = s["aggregates"]
    assert (a["all"]["n_injected"], a["all"]["n_found"]) == (20, 14)
    assert (a[">=7"]["n_injected"], a[">=7"]["n_found"]) == (12, 8)
    assert (a[">=10"]["n_injected"], a[">=10"]["n_found"]) == (10, 6)
    assert b["3-5"]["flux_ratio_median"] == pytest.approx(2.0)
    assert b["5-7"]["flux_ratio_median"] == pytest.approx(1.1)
    assert b["5-7"]["flux_ratio_p16"] < 1.1 < b["5-7"]["flux_ratio_p84"]
    assert b["20-100"]["offset_median"] == pytest.approx(1.0)
    # false detections: two per injected field; inverted and original once per field
    assert s["false_injected"] == 4
    assert s["false_injected_per_1e5_beams"] == pytest.approx(4 / 2e4 * 1e5)
    assert (s["n_original"], s["n_inverted"]) == (3, 1)
    assert s["inverted_per_1e5_beams"] == pytest.approx(10.0)
    assert s["percent_real"] == pytest.approx(100 * (3 - 1) / 3)
    assert s["seconds_per_megapixel"] == pytest.approx(0.5)
    assert s["per_field"]["f"]["n_found"] == 14 and s["per_field"]["f"]["false_injected"] == 4


def test_score_threshold_cuts_every_catalogue():
    rec = _record()
    curve = {c["threshold"]: c for c in threshold_curve([rec], thresholds=[0.25, 0.5, 0.95])}
    assert curve[0.25]["completeness"] == pytest.approx(0.7)
    assert curve[0.25]["false_injected"] == 0 and curve[0.25]["n_inverted"] == 1
    assert curve[0.5]["completeness"] == pytest.approx(0.5)  # the two at 0.3 go
    assert curve[0.5]["completeness_bins"]["5-7"] == 0.0
    assert curve[0.5]["n_inverted"] == 0 and curve[0.5]["percent_real"] == pytest.approx(100.0)
    assert curve[0.95]["completeness"] == 0.0 and math.isnan(curve[0.95]["percent_real"])
    assert score_finder([rec], score_thresh=0.5)["aggregates"]["all"]["n_found"] == 5


def test_empty_bins_and_open_top_bin():
    assert snr_bins(100.0)[-1] == (20.0, 100.0)
    assert snr_bins(300.0)[-1] == (100.0, math.inf)
    s = score_finder([_record()], bins=snr_bins(300.0))
    assert s["bins"][">=100"]["n_injected"] == 1 and s["bins"][">=100"]["n_found"] == 0
    empty = score_finder([_record()], bins=((1000.0, 2000.0),))
    assert math.isnan(empty["bins"]["1000-2000"]["completeness"])


def test_collect_images(tmp_path):
    (tmp_path / "d").mkdir()
    for name in ("b.fits", "a.FITS", "c.fits.gz", "notes.txt"):
        (tmp_path / "d" / name).write_bytes(b"")
    one = tmp_path / "one.fits"
    one.write_bytes(b"")
    got = collect_images([tmp_path / "d", one])
    assert [p.name for p in got] == ["a.FITS", "b.fits", "c.fits.gz", "one.fits"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        collect_images([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="missing.fits"):
        collect_images([tmp_path / "missing.fits"])


# --------------------------------------------------------------------------- a whole run
def _field(path, seed):
    rng = np.random.default_rng(seed)
    data = rng.normal(0, 1e-4, (96, 96)).astype(np.float32)
    h = fits.Header()
    h["CTYPE1"], h["CRVAL1"], h["CRPIX1"], h["CDELT1"] = "RA---SIN", 150.0, 48.0, -1.8 / 3600
    h["CTYPE2"], h["CRVAL2"], h["CRPIX2"], h["CDELT2"] = "DEC--SIN", 30.0, 48.0, 1.8 / 3600
    h["BMAJ"], h["BMIN"], h["BPA"] = 5.4 / 3600, 5.4 / 3600, 0.0
    fits.PrimaryHDU(data, h).writeto(path)
    return path


class _Fails:
    """Raises on the field named 'bad', finds nothing elsewhere."""

    name = "fails"

    def find(self, field):
        if "bad" in field.path.parts[-1] or "bad" in field.path.parts[-3:-1]:
            raise RuntimeError("no luck here")
        return new_catalogue(x=np.zeros(0), y=np.zeros(0))


def test_a_finder_failing_on_one_field_is_counted_and_the_run_goes_on(tmp_path):
    from astrodet.sky.finders import build_finder

    a = _field(tmp_path / "good.fits", 0)
    b = _field(tmp_path / "bad.fits", 1)
    summary = run_injection_recovery(
        images=[a, b],
        finders={"classical": build_finder("classical"), "fails": _Fails()},
        output=tmp_path / "out",
        n=3,
        seeds=[0],
        progress=False,
    )
    assert summary["n_fields"] == 2
    fails = summary["finders"]["fails"]
    assert fails["failed_runs"] >= 1
    assert any(e["field"] == "bad" and "no luck here" in e["error"] for e in summary["failures"])
    assert list(fails["per_field"]) == ["good"]  # scored where it ran
    assert fails["aggregates"]["all"]["n_found"] == 0
    classical = summary["finders"]["classical"]
    assert set(classical["per_field"]) == {"good", "bad"}
    assert classical["aggregates"]["all"]["n_injected"] == 6
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert on_disk["failures"][0]["error"] == "RuntimeError: no luck here"
    assert "no luck here" in (tmp_path / "out" / "table.md").read_text()
    assert "fails" in format_table(on_disk)
