"""Deblending a detected box into one source per separate maximum, on synthetic Gaussians
of a 3-pixel beam (sizes in beams, S/N in rms)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.io import fits

from astrodet.sky.field import Beam, open_field
from astrodet.sky.finders.detector import DetectorFinder
from astrodet.sky.measure import deblend, measure_sources

K = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM / sigma
SCALE = 2.0  # arcsec per pixel
BEAM = Beam(6.0, 6.0, 0.0)
FWHM = 3.0  # beam in pixels
NOISE = 1e-3


def _image(sources, *, shape=(64, 64), seed=0, noise=NOISE):
    """Noise plus Gaussians ``(x, y, peak, fwhm_x, fwhm_y)`` (pixels)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    img = rng.normal(0.0, noise, shape)
    for x, y, peak, fx, fy in sources:
        img += peak * np.exp(-0.5 * (((xx - x) / (fx / K)) ** 2 + ((yy - y) / (fy / K)) ** 2))
    return img


def _measure(img, box, *, deblend_on=True):
    rms = np.full(img.shape, NOISE)
    return measure_sources(
        img, np.array([box], float), rms=rms, bkg=None, beam=BEAM, pixel_scale=SCALE,
        deblend=deblend_on,
    )  # fmt: skip


def test_pair_two_beams_apart_gives_two_sources_at_their_positions():
    sep = 2.0 * FWHM
    a, b = (30.0, 32.0, 0.05), (30.0 + sep, 32.0, 0.03)
    img = _image([(*a, FWHM, FWHM), (*b, FWHM, FWHM)])
    t = _measure(img, [24, 26, 43, 39])
    assert len(t) == 2
    # brightest first, each at its own Gaussian's position, with its own peak
    assert np.asarray(t["x"]) == pytest.approx([a[0], b[0]], abs=0.3)
    assert np.asarray(t["y"]) == pytest.approx([a[1], b[1]], abs=0.3)
    assert np.asarray(t["peak_flux"]) == pytest.approx([a[2], b[2]], rel=0.1)
    # one source per box without deblending: its centroid lies between the two
    (one,) = _measure(img, [24, 26, 43, 39], deblend_on=False)
    assert a[0] + 1.0 < one["x"] < b[0] - 1.0


def test_pair_closer_than_a_beam_stays_one_source():
    img = _image([(30.0, 32.0, 0.05, FWHM, FWHM), (30.0 + 0.7 * FWHM, 32.0, 0.05, FWHM, FWHM)])
    assert len(_measure(img, [24, 26, 39, 39])) == 1


def test_elongated_single_gaussian_stays_one_source():
    # 4 beams long, 1 beam wide, bright: noise makes no second separate maximum
    img = _image([(32.0, 32.0, 0.08, 4 * FWHM, FWHM)])
    t = _measure(img, [22, 28, 43, 37])
    assert len(t) == 1
    assert t["x"][0] == pytest.approx(32.0, abs=0.3)


def test_maxima_without_a_clear_dip_stay_one_source():
    # two knots 4 beams apart on a wide ridge (and the ridge's own crest between them): the
    # light between them falls to 0.8 of the knots, short of the Rayleigh dip
    img = _image(
        [
            (31.0, 32.0, 0.05, 12.0, FWHM),
            (25.0, 32.0, 0.03, FWHM, FWHM),
            (37.0, 32.0, 0.03, FWHM, FWHM),
        ]
    )
    core = slice(27, 38), slice(20, 43)
    assert len(deblend(img / NOISE, core=core, beam_pixels=FWHM)) == 1
    assert len(_measure(img, [20, 27, 43, 38])) == 1
    # the same knots on a fainter ridge do dip: two sources
    img = _image(
        [
            (31.0, 32.0, 0.02, 12.0, FWHM),
            (25.0, 32.0, 0.03, FWHM, FWHM),
            (37.0, 32.0, 0.03, FWHM, FWHM),
        ]
    )
    assert len(deblend(img / NOISE, core=core, beam_pixels=FWHM)) == 2


def test_faint_second_maximum_below_threshold_is_not_split():
    img = _image([(30.0, 32.0, 0.05, FWHM, FWHM), (38.0, 32.0, 0.0015, FWHM, FWHM)])
    assert len(_measure(img, [24, 26, 44, 39])) == 1


def test_one_source_box_measured_exactly_as_without_deblending():
    img = _image([(31.3, 30.6, 0.02, 1.5 * FWHM, FWHM)])
    on, off = _measure(img, [26, 26, 37, 36]), _measure(img, [26, 26, 37, 36], deblend_on=False)
    assert len(on) == len(off) == 1
    for c in ("x", "y", "peak_flux", "total_flux", "maj", "min", "pa", "rms", "snr"):
        assert on[c][0] == off[c][0], c


class OneBox(torch.nn.Module):
    """One box around every pixel above ``level`` of each tile (stretched input)."""

    def __init__(self, level: float = 0.5):
        super().__init__()
        self.level = level

    def forward(self, images):
        out = []
        for im in images:
            ys, xs = np.nonzero(im[0].numpy() > self.level)
            b = [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]] if len(xs) else []
            out.append(
                {
                    "boxes": torch.tensor(b, dtype=torch.float32).reshape(-1, 4),
                    "scores": torch.ones(len(b)),
                    "labels": torch.ones(len(b), dtype=torch.int64),
                }
            )
        return out


@pytest.mark.parametrize("on", [True, False])
def test_detector_finder_deblend_option(tmp_path, on):
    img = _image([(30.0, 32.0, 0.05, FWHM, FWHM), (36.0, 32.0, 0.04, FWHM, FWHM)])
    h = fits.Header()
    h["CTYPE1"], h["CRVAL1"], h["CRPIX1"], h["CDELT1"] = "RA---TAN", 150.0, 32, -SCALE / 3600
    h["CTYPE2"], h["CRVAL2"], h["CRPIX2"], h["CDELT2"] = "DEC--TAN", 2.0, 32, SCALE / 3600
    h["BMAJ"], h["BMIN"], h["BPA"] = BEAM.maj / 3600, BEAM.min / 3600, 0.0
    fits.PrimaryHDU(img.astype(np.float32), header=h).writeto(tmp_path / "f.fits")
    finder = DetectorFinder(
        model=OneBox(0.4), tile_size=64, beam_pixels=FWHM, overlap=8, score_thresh=0.0,
        progress=False, deblend=on,
    )  # fmt: skip
    with open_field(tmp_path / "f.fits") as field:
        t = finder.find(field)
    assert len(t) == (2 if on else 1)
    assert t.meta["DEBLEND"] is on
    if on:
        assert sorted(np.asarray(t["x"])) == pytest.approx([30.0, 36.0], abs=0.3)
        assert np.all(np.asarray(t["score"]) == 1.0)


@pytest.mark.parametrize(("flag", "expected"), [([], False), (["--deblend"], True)])
def test_find_sources_deblend_flag_reaches_the_finder(monkeypatch, flag, expected):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    import find_sources

    seen = {}
    monkeypatch.setattr(
        DetectorFinder, "from_config", classmethod(lambda cls, c, w, **kw: seen.update(kw))
    )
    parser = find_sources.build_parser()
    args = parser.parse_args(["--config-file", "c.py", "--weights", "w.pth", "--image", "f.fits",
                              "--output", "out", *flag])  # fmt: skip
    find_sources.build(args, parser)
    assert seen["deblend"] is expected
