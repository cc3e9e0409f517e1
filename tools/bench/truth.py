"""A simulated MeerKAT-like field to score finders on truth beside the real FIRST fields.

    python tools/bench/truth.py --output output/meerkat_like.fits
    tools/inject_recover.py --image output/meerkat_like.fits --finder pybdsf classical \\
        detector --config-file configs/first_injected_vit_small.py \\
        --weights output/first_injected_vit_small/model_final.pth --output DIR

The sky of ``astrodet.data.synthetic.make_radio_field`` (compact sources and FR-I/FR-II
doubles over noise correlated like the beam), at MGCLS's scale: 1.5"/px, a 7.5" x 6.5"
beam at PA 30 deg (5 x 4.3 px: a beam unlike FIRST's, which the finder resamples to its own),
5 uJy/beam, written with a SIN projection centred at Dec -30 deg. No FIRST pixel, beam or
noise level is in it, so it checks that a finder trained on FIRST is not tuned to FIRST.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

PIXEL = 1.5  # arcsec
BEAM = (7.5, 6.5, 30.0)  # arcsec, arcsec, deg
NOISE = 5e-6  # Jy/beam


def write_meerkat_like_field(path: Path, *, size: int = 1024, seed: int = 0) -> Path:
    """Write the simulated field (float32 Jy/beam with WCS and beam keys) to ``path``.

    Args:
        path: the FITS file (replaced).
        size: side in pixels.
        seed: of the sky.
    """
    from astropy.io import fits

    from astrodet.data.synthetic import make_radio_field
    from astrodet.utils import atomic_write_fits

    rng = np.random.default_rng(seed)
    scale = (size / 256) ** 2  # make_radio_field's densities are per 256 px field
    beam_px = float(np.sqrt(BEAM[0] * BEAM[1])) / PIXEL
    image, _, _ = make_radio_field(
        rng,
        size=size,
        beam_fwhm=beam_px,
        noise_rms=NOISE,
        mean_compact=20.0 * scale,
        mean_extended=1.5 * scale,
    )
    h = fits.Header()
    h["CTYPE1"], h["CRVAL1"], h["CRPIX1"], h["CDELT1"] = "RA---SIN", 60.0, size / 2, -PIXEL / 3600
    h["CTYPE2"], h["CRVAL2"], h["CRPIX2"], h["CDELT2"] = "DEC--SIN", -30.0, size / 2, PIXEL / 3600
    h["BMAJ"], h["BMIN"], h["BPA"] = BEAM[0] / 3600, BEAM[1] / 3600, BEAM[2]
    h["BUNIT"] = "JY/BEAM"
    h["TELESCOP"] = "simulated"
    return atomic_write_fits(Path(path), np.asarray(image, np.float32), h)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--output", required=True, help="the FITS file to write")
    p.add_argument("--size", type=int, default=1024, help="side in pixels (1024)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sky (0)")
    args = p.parse_args(argv)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    print(write_meerkat_like_field(out, size=args.size, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
