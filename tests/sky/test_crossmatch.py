"""One-to-one cross-matching and its metrics on hand-made catalogues of known counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from astrodet.sky.catalogue import new_catalogue
from astrodet.sky.crossmatch import crossmatch, default_radius, match_metrics

DEC0 = -30.0
ARCSEC = 1.0 / 3600.0


def _offset(ra, dec, east_arcsec, north_arcsec):
    return ra + east_arcsec * ARCSEC / math.cos(math.radians(dec)), dec + north_arcsec * ARCSEC


def make_pair():
    """Reference: 6 sources 60" apart. Catalogue: 3 found within 1", one at 3.2" (outside a
    3" radius), two near reference 4 (1" and 2": one match, one spurious), one far away.
    Expected: 4 matched (refs 0, 1, 2, 4), refs 3 (too far) and 5 missed, 3 spurious."""
    ref_ra = 150.0 + np.arange(6) * 60 * ARCSEC / math.cos(math.radians(DEC0))
    ref_dec = np.full(6, DEC0)
    ref_snr = np.array([7.0, 15.0, 30.0, 60.0, 12.0, 8.0])
    ref = new_catalogue(
        ra=ref_ra,
        dec=ref_dec,
        snr=ref_snr,
        total_flux=np.full(6, 1e-3),
        min=np.full(6, 6.0),
        meta={"BEAM_MAJ": 6.0, "BEAM_MIN": 6.0, "BEAM_PA": 0.0},
    )
    pos = [
        _offset(ref_ra[0], DEC0, 0.5, 0.0),
        _offset(ref_ra[1], DEC0, 0.0, -0.8),
        _offset(ref_ra[2], DEC0, 0.6, 0.6),
        _offset(ref_ra[3], DEC0, 3.2, 0.0),  # just outside 3"
        _offset(ref_ra[4], DEC0, 2.0, 0.0),  # second-nearest to ref 4: spurious
        _offset(ref_ra[4], DEC0, -1.0, 0.0),  # nearest to ref 4: the match
        _offset(ref_ra[5], DEC0 + 0.1, 0.0, 0.0),  # nowhere near
    ]
    cat = new_catalogue(
        ra=[p[0] for p in pos],
        dec=[p[1] for p in pos],
        snr=[6.0, 14.0, 25.0, 55.0, 9.0, 11.0, 30.0],
        total_flux=[1.1e-3, 0.9e-3, 1.0e-3, 1e-3, 1e-3, 1.2e-3, 1e-3],
    )
    return ref, cat


def test_one_to_one_match_counts():
    ref, cat = make_pair()
    m = crossmatch(ref, cat, radius=3.0)
    assert m.frame == "sky"
    assert dict(zip(m.ref.tolist(), m.cat.tolist())) == {0: 0, 1: 1, 2: 2, 4: 5}
    np.testing.assert_allclose(
        sorted(m.separation), [0.5, 0.8, math.hypot(0.6, 0.6), 1.0], atol=1e-3
    )
    metrics = match_metrics(ref, cat, m)
    assert (metrics["n_reference"], metrics["n_catalog"], metrics["n_matched"]) == (6, 7, 4)
    assert metrics["completeness"] == pytest.approx(4 / 6)
    assert metrics["reliability"] == pytest.approx(4 / 7)
    c, r = 4 / 6, 4 / 7
    assert metrics["f1"] == pytest.approx(2 * c * r / (c + r))
    assert metrics["median_flux_ratio"] == pytest.approx(np.median([1.1, 0.9, 1.0, 1.2]))
    assert metrics["median_offset_arcsec"] == pytest.approx(
        np.median([0.5, 0.8, math.hypot(0.6, 0.6), 1.0]), abs=1e-3
    )
    # A larger radius picks up the source at 3.2".
    assert len(crossmatch(ref, cat, radius=3.5).ref) == 5


def test_per_bin_numbers():
    ref, cat = make_pair()
    bins = {
        b["label"]: b for b in match_metrics(ref, cat, crossmatch(ref, cat, radius=3.0))["snr_bins"]
    }
    # References: 5-10 {0, 5}, 10-20 {1, 4}, 20-50 {2}, >50 {3}.
    assert [bins[k]["n_reference"] for k in ("5-10", "10-20", "20-50", ">50")] == [2, 2, 1, 1]
    assert [bins[k]["n_matched"] for k in ("5-10", "10-20", "20-50", ">50")] == [1, 2, 1, 0]
    # Catalogue: matched 0->5-10, 1->10-20, 2->20-50, 5->10-20 (its reference's bin);
    # unmatched by own snr: 3 (55)->>50, 4 (9)->5-10, 6 (30)->20-50.
    assert [bins[k]["n_catalog"] for k in ("5-10", "10-20", "20-50", ">50")] == [2, 2, 2, 1]
    assert bins["5-10"]["completeness"] == 0.5 and bins["5-10"]["reliability"] == 0.5
    assert bins["10-20"]["completeness"] == 1.0 and bins["10-20"]["reliability"] == 1.0
    assert bins[">50"]["completeness"] == 0.0 and bins[">50"]["reliability"] == 0.0


def test_pixel_matching_without_sky_positions():
    ref = new_catalogue(x=[10.0, 50.0], y=[10.0, 50.0], snr=[10.0, 10.0])
    cat = new_catalogue(x=[10.5, 52.5, 80.0], y=[10.0, 50.0, 80.0], snr=[10.0, 10.0, 10.0])
    m = crossmatch(ref, cat, radius=4.0, pixel_radius=2.0)
    assert m.frame == "pixel" and m.ref.tolist() == [0] and m.cat.tolist() == [0]
    with pytest.raises(ValueError, match="pixel scale"):
        crossmatch(ref, cat, radius=4.0)


def test_default_radius_prefers_the_given_beam_then_meta_then_sizes():
    ref, cat = make_pair()
    assert default_radius(ref, cat, beam=(10.0, 8.0, 0.0))[0] == 5.0
    assert default_radius(ref, cat)[0] == 3.0
    ref.meta.clear()
    r, source = default_radius(ref, cat)
    assert r == 3.0 and "median" in source


def test_empty_catalogue():
    ref, _ = make_pair()
    empty = new_catalogue(ra=[], dec=[])
    metrics = match_metrics(ref, empty, crossmatch(ref, empty, radius=3.0))
    assert (
        metrics["n_matched"] == 0
        and metrics["completeness"] == 0.0
        and math.isnan(metrics["reliability"])
    )


def _blanked_field(tmp_path):
    """100 x 120 px at 2"/px, 6" beam, noise 1e-4 Jy/beam, columns x < 30 blanked; two
    point sources, S/N 60 at (70, 50) and S/N 15 at (100, 80)."""
    from astropy.io import fits
    from astropy.wcs import WCS

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:100, :120].astype(float)
    img = rng.normal(0, 1e-4, (100, 120))
    sigma = 3.0 / (2 * math.sqrt(2 * math.log(2)))
    for x, y, peak in ((70, 50, 6e-3), (100, 80, 1.5e-3)):
        img += peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    img[:, :30] = np.nan
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval, w.wcs.crpix = [150.0, DEC0], [61.0, 51.0]
    w.wcs.cdelt = [-2 * ARCSEC, 2 * ARCSEC]
    h = w.to_header()
    h["BMAJ"] = h["BMIN"] = 6 * ARCSEC
    h["BPA"] = 0.0
    fits.PrimaryHDU(img.astype(np.float32), h).writeto(tmp_path / "field.fits")
    return tmp_path / "field.fits", w


def test_image_cuts_a_survey_list_to_the_field_and_measures_its_snr(tmp_path, caplog):
    from astropy.table import Table

    from astrodet.sky.crossmatch import compare_catalogues

    path, w = _blanked_field(tmp_path)
    # a survey list (no noise column): the two sources, one on blanked pixels, one off the image
    ra, dec = w.all_pix2world([70, 100, 10, 300], [50, 80, 50, 50], 0)
    Table({"RAJ2000": ra, "DEJ2000": dec, "S1.4": [6.0, 1.5, 3.0, 2.0]}).write(
        tmp_path / "survey.csv", format="ascii.csv"
    )
    found = new_catalogue(
        ra=ra[:3] + 0.3 * ARCSEC, dec=dec[:3], snr=[55.0, 14.0, 9.0], total_flux=[6e-3] * 3
    )
    from astrodet.sky.catalogue import write_catalogue

    write_catalogue(found, tmp_path / "found", formats=("fits",))
    m = compare_catalogues(
        reference=tmp_path / "survey.csv",
        catalog=tmp_path / "found.fits",
        output_dir=tmp_path / "cmp",
        image=path,
    )
    assert (m["n_reference"], m["n_catalog"], m["n_matched"]) == (2, 2, 2)
    assert m["n_reference_outside_image"] == 2 and m["n_catalog_outside_image"] == 1
    assert m["n_reference_snr_from_image"] == 2
    assert m["radius_arcsec"] == pytest.approx(3.0) and m["radius_from"] == "the image's beam"
    by_bin = {b["label"]: b["n_reference"] for b in m["snr_bins"]}
    assert by_bin == {"5-10": 0, "10-20": 1, "20-50": 0, ">50": 1}
    assert "lie beyond" not in caplog.text
    # without the image the sky around the field counts as missed, and a warning says so
    with caplog.at_level("WARNING", logger="astrodet.sky.crossmatch"):
        m = compare_catalogues(
            reference=tmp_path / "survey.csv",
            catalog=tmp_path / "found.fits",
            output_dir=tmp_path / "cmp2",
            radius_arcsec=3.0,
        )
    assert m["n_reference"] == 4 and m["completeness"] == pytest.approx(0.75)
    assert "1 of 4 reference sources lie beyond" in caplog.text and "--image" in caplog.text


def _row(x_arcsec, y_arcsec=0.0):
    """A position x arcsec east and y north of (150, DEC0)."""
    return _offset(150.0, DEC0, x_arcsec, y_arcsec)


def _line(xs, **kw):
    pos = [_row(x) for x in xs]
    return new_catalogue(ra=[p[0] for p in pos], dec=[p[1] for p in pos], **kw)


def test_optimal_matching_beats_nearest_first_in_a_crowd():
    # references at 0" and 2", catalogue sources at 1.2" and 3.5", radius 3": nearest first
    # pairs 2"-1.2" (0.8") and leaves both others unmatched; the optimum matches both
    ref, cat = _line([0.0, 2.0]), _line([1.2, 3.5])
    m = crossmatch(ref, cat, radius=3.0)
    assert m.ref.tolist() == [0, 1] and m.cat.tolist() == [0, 1]
    np.testing.assert_allclose(m.separation, [1.2, 1.5], atol=1e-3)
    # among assignments of equal size, the smaller total separation
    ref, cat = _line([0.0, 1.0]), _line([0.2, 1.1])
    m = crossmatch(ref, cat, radius=3.0)
    assert dict(zip(m.ref.tolist(), m.cat.tolist())) == {0: 0, 1: 1}


@pytest.mark.parametrize("dense", [True, False])
def test_optimal_matching_on_a_crowded_random_field(monkeypatch, dense):
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    import astrodet.sky.crossmatch as xm

    if not dense:  # every group through the sparse solver
        monkeypatch.setattr(xm, "DENSE_LIMIT", 0)
    rng = np.random.default_rng(4)
    ref = _line(rng.uniform(0, 120, 150))
    ref["dec"] = DEC0 + rng.uniform(0, 40, 150) * ARCSEC
    cat = _line(rng.uniform(0, 120, 170))
    cat["dec"] = DEC0 + rng.uniform(0, 40, 170) * ARCSEC
    radius = 3.0
    m = crossmatch(ref, cat, radius=radius)
    assert len(set(m.ref.tolist())) == len(m.ref) and len(set(m.cat.tolist())) == len(m.cat)
    assert np.all(m.separation <= radius)
    # the most matches any one-to-one choice allows (an independent maximum matching)
    ir, ic, sep = xm._sky_pairs(ref, cat, np.arange(150), np.arange(170), radius)
    graph = csr_matrix((np.ones(len(ir)), (ir, ic)), shape=(150, 170))
    best = int((maximum_bipartite_matching(graph, perm_type="column") >= 0).sum())
    assert len(m.ref) == best > 50
    # and the least total separation with that many: one dense problem over the whole field
    cost = np.full((150, 170), 1e6)
    cost[ir, ic] = sep
    rows, cols = linear_sum_assignment(cost)
    real = cost[rows, cols] < 1e6
    assert real.sum() == best
    assert m.separation.sum() == pytest.approx(cost[rows, cols][real].sum(), rel=1e-9)
    # nearest first falls short here
    order, used_r, used_c, greedy = np.argsort(sep), set(), set(), 0
    for k in order:
        if ir[k] not in used_r and ic[k] not in used_c:
            used_r.add(ir[k])
            used_c.add(ic[k])
            greedy += 1
    assert greedy < best


def test_one_nan_ra_does_not_switch_the_match_to_pixels(caplog):
    # 2"/px, north up: x grows to the west (RA decreases)
    xs = np.array([10.0, 30.0, 50.0, 70.0, 90.0])
    pos = [_row(-2.0 * (x - 50.0)) for x in xs]
    meta = {"PIXSCALE": 2.0, "BEAM_MAJ": 6.0, "BEAM_MIN": 6.0, "BEAM_PA": 0.0}
    ref = new_catalogue(
        ra=[p[0] for p in pos], dec=[p[1] for p in pos], x=xs, y=np.zeros(5), meta=meta
    )
    shifted = [_row(-2.0 * (x - 50.0) + 0.5) for x in xs]  # 0.5" east of each
    cat = new_catalogue(
        ra=[p[0] for p in shifted],
        dec=[p[1] for p in shifted],
        x=xs - 0.25,
        y=np.zeros(5),
        meta={"PIXSCALE": 2.0},
    )
    cat["ra"][2] = np.nan
    with caplog.at_level("WARNING", logger="astrodet.sky.crossmatch"):
        m = crossmatch(ref, cat, radius=3.0)
    assert (
        m.frame == "sky" and m.ref.tolist() == [0, 1, 2, 3, 4] and m.cat.tolist() == m.ref.tolist()
    )
    # the rows with sky positions on the sky, the NaN row by its pixels, in arcsec
    assert m.by_pixels.tolist() == [False, False, True, False, False]
    np.testing.assert_allclose(m.separation, 0.5, atol=1e-3)
    assert "0 reference and 1 catalogue sources have no ra/dec" in caplog.text
    metrics = match_metrics(ref, cat, m)
    assert metrics["n_matched_by_pixels"] == 1 and metrics["median_offset_arcsec"] == pytest.approx(
        0.5, abs=1e-3
    )
    # no pixel scale: the row is left out and counted, the others still match on the sky
    ref.meta.pop("PIXSCALE")
    cat.meta.pop("PIXSCALE")
    m = crossmatch(ref, cat, radius=3.0)
    assert m.frame == "sky" and m.ref.tolist() == [0, 1, 3, 4]
    assert (m.n_reference_unplaced, m.n_catalog_unplaced) == (0, 1)


def _islands():
    """Reference: island 0 a double (two sources 10" apart east-west), islands 1 and 2
    single sources 60" and 120" away. Catalogue: one detection at the double's middle,
    its FWHM ellipse 16" x 8" east-west; one on island 1; one spurious."""
    ref = _line([-5.0, 5.0, 60.0, 120.0], island_id=[0, 0, 1, 2], snr=[20.0, 20.0, 10.0, 8.0])
    cat = _line([0.0, 60.4, 200.0], maj=[16.0, 6.0, 6.0], min=[8.0, 6.0, 6.0], pa=[90.0, 0, 0])
    return ref, cat


def test_island_level_score_counts_a_detection_covering_an_island():
    ref, cat = _islands()
    m = crossmatch(ref, cat, radius=3.0)
    metrics = match_metrics(ref, cat, m)
    # source level: only island 1's source is matched (the middle is 5" from both)
    assert metrics["n_matched"] == 1 and metrics["completeness"] == pytest.approx(0.25)
    # island level: the double is found by the detection covering it
    assert (metrics["n_islands"], metrics["n_islands_found"]) == (3, 2)
    assert metrics["n_catalog_on_islands"] == 2
    assert metrics["island_completeness"] == pytest.approx(2 / 3)
    assert metrics["island_reliability"] == pytest.approx(2 / 3)
    # an ellipse along the other axis (north-south) does not reach the components
    cat["pa"][0] = 0.0
    metrics = match_metrics(ref, cat, crossmatch(ref, cat, radius=3.0))
    assert metrics["n_islands_found"] == 1 and metrics["island_reliability"] == pytest.approx(1 / 3)
    # without island ids there is no island-level score
    ref.remove_column("island_id")
    metrics = match_metrics(ref, cat, crossmatch(ref, cat, radius=3.0))
    assert metrics["island_completeness"] is None and metrics["n_islands"] is None


def test_snr_from_field_is_not_biased_high(tmp_path):
    """Point sources of known peak S/N 3 and 20 on white noise, 3 px beam, at sub-pixel
    positions: the brightest pixel within a beam reads the faint ones about 20 % high."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from astrodet.sky.crossmatch import snr_from_field
    from astrodet.sky.field import open_field

    rng = np.random.default_rng(3)
    n, noise, sigma = 300, 1e-4, 3.0 / 2.3548
    img = rng.normal(0.0, noise, (n, n))
    grid = np.arange(20, 280, 20, dtype=float)
    xy = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2) + rng.uniform(-0.5, 0.5, (169, 2))
    snr = np.where(np.arange(len(xy)) % 2, 3.0, 20.0)
    yy, xx = np.mgrid[:n, :n]
    for (x, y), s in zip(xy, snr):
        img += s * noise * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval, w.wcs.crpix, w.wcs.cdelt = [150.0, 2.0], [150.0, 150.0], [-2 * ARCSEC, 2 * ARCSEC]
    h = w.to_header()
    h["BMAJ"] = h["BMIN"] = 6 * ARCSEC
    h["BPA"] = 0.0
    img[:, :8] = np.nan
    fits.PrimaryHDU(img.astype(np.float32), h).writeto(tmp_path / "f.fits")
    table = new_catalogue(x=[*xy[:, 0], 4.0, 400.0], y=[*xy[:, 1], 50.0, 50.0])
    with open_field(tmp_path / "f.fits") as field:
        measured = snr_from_field(table, field)
    # on blanked pixels and off the image: NaN
    assert np.isnan(measured[-2:]).all()
    measured = measured[:-2]
    for s in (3.0, 20.0):
        ratio = np.median(measured[snr == s]) / s
        assert abs(ratio - 1.0) < 0.08, (s, ratio)
    # the scatter is the noise's (one rms), not more
    assert np.std(measured[snr == 3.0] - 3.0) < 1.2
