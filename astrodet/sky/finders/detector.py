"""A trained detector as a source finder: tiled inference over a whole field, boxes merged
across tiles, each source measured on the original float pixels.

The field is cut into overlapping tiles of the config's ``dataloader.tile_size`` (the size
of the training images) and each tile is shown to the model as in training: NaN filled,
stretched (the config's stretch, e.g. ``snr``), flipped to display orientation (north up).
A field whose beam spans another number of pixels than the training images'
(``dataloader.beam_pixels``) is resampled so that it matches: tiles then cover
``tile_size / f`` field pixels and the boxes are mapped back to the field's own pixel grid.

Merging. A source cut by an inner tile edge is held whole by the neighbouring tile when it
is smaller than the overlap, so a box touching an inner edge (within ``EDGE_MARGIN`` model
pixels, ``EDGE_MARGIN / f`` field pixels) is dropped when the overlap could hold it; what
remains is merged by non-maximum suppression over the overlaps.

Boxes inside this module are XYXY in field pixels, FITS orientation, COCO convention
(pixel ``i`` spans ``[i, i + 1)``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

import numpy as np

# the field picture lives with the other pictures; the old import path keeps working
from astrodet.visualize import save_field_picture as save_field_picture

from .base import register_finder

logger = logging.getLogger(__name__)

__all__ = ["DetectorFinder", "TileBoxes", "drop_inner_edge_boxes", "merge_tile_boxes"]

#: Chunk side (field pixels) over which the background map and measurements are made, so
#: a 16k x 16k field never holds more than one chunk's maps in memory.
MEASURE_CHUNK = 2048
MEASURE_MARGIN = 64
#: How close to an inner tile edge a box counts as touching it, in model-tile pixels (the
#: training images' pixels): a fixed distance on the sky, whatever the field is resampled by.
EDGE_MARGIN = 1.0


@dataclass
class TileBoxes:
    """Detections of one tile: ``boxes`` XYXY field pixels (COCO convention), ``scores``,
    ``labels`` (the model's labels, 1-based as torchvision's; empty: none kept) and the
    tile's field bounds."""

    y0: int
    x0: int
    y1: int
    x1: int
    boxes: np.ndarray = dc_field(default_factory=lambda: np.zeros((0, 4)))
    scores: np.ndarray = dc_field(default_factory=lambda: np.zeros(0))
    labels: np.ndarray = dc_field(default_factory=lambda: np.zeros(0, int))


def drop_inner_edge_boxes(
    tile: TileBoxes, *, shape: tuple[int, int], overlap: float, margin: float = 1.0
) -> np.ndarray:
    """Boolean keep-mask of a tile's boxes: a box touching an edge of the tile that lies
    inside the field (within ``margin`` pixels) is dropped when it is smaller than the
    ``overlap`` along that axis (the neighbouring tile holds it whole).

    Args:
        tile: the tile and its boxes.
        shape: the field's (ny, nx).
        overlap: tile overlap in field pixels.
        margin: how close to an edge counts as touching it.
    """
    b = np.asarray(tile.boxes, float).reshape(-1, 4)
    ny, nx = shape
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    fits_x, fits_y = w < overlap - margin, h < overlap - margin
    drop = np.zeros(len(b), bool)
    if tile.x0 > 0:
        drop |= (b[:, 0] <= tile.x0 + margin) & fits_x
    if tile.x1 < nx:
        drop |= (b[:, 2] >= tile.x1 - margin) & fits_x
    if tile.y0 > 0:
        drop |= (b[:, 1] <= tile.y0 + margin) & fits_y
    if tile.y1 < ny:
        drop |= (b[:, 3] >= tile.y1 - margin) & fits_y
    return ~drop


def merge_tile_boxes(
    tiles: Sequence[TileBoxes],
    *,
    shape: tuple[int, int],
    overlap: float,
    nms_thresh: float = 0.3,
    margin: float = 1.0,
    return_labels: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """One set of boxes for the field: inner-edge boxes dropped (see
    :func:`drop_inner_edge_boxes`), then what the overlaps found twice merged: NMS, and a
    box of one tile whose centre lies in a higher-scoring box of another tile (or holds
    that box's centre) is the same source. For boxes of a few pixels, two tiles' boxes of
    one source can overlap less than any useful IoU threshold; the model's own NMS already
    settled each tile.

    Returns:
        (boxes N x 4, scores N), by decreasing score; with ``return_labels`` also the
        boxes' labels (-1 where a tile kept none).
    """
    import torch
    from scipy.spatial import cKDTree
    from torchvision.ops import nms

    boxes, scores, owner, labels = [], [], [], []
    for k, t in enumerate(tiles):
        keep = drop_inner_edge_boxes(t, shape=shape, overlap=overlap, margin=margin)
        boxes.append(np.asarray(t.boxes, float).reshape(-1, 4)[keep])
        scores.append(np.asarray(t.scores, float).reshape(-1)[keep])
        owner.append(np.full(int(keep.sum()), k))
        lab = np.asarray(t.labels, int).reshape(-1)
        labels.append(lab[keep] if len(lab) == len(keep) else np.full(int(keep.sum()), -1))
    if not boxes or not sum(len(x) for x in boxes):
        empty = np.zeros((0, 4)), np.zeros(0)
        return (*empty, np.zeros(0, int)) if return_labels else empty
    b, s, o = np.concatenate(boxes), np.concatenate(scores), np.concatenate(owner)
    lab = np.concatenate(labels)
    keep = nms(torch.as_tensor(b), torch.as_tensor(s), nms_thresh).numpy()
    b, s, o, lab = b[keep], s[keep], o[keep], lab[keep]
    centre = (b[:, :2] + b[:, 2:]) / 2.0
    reach = float(np.hypot(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]).max()) / 2.0 + 1e-6
    tree = cKDTree(centre)
    alive = np.ones(len(b), bool)
    for i in range(len(b)):  # by decreasing score (NMS order)
        if not alive[i]:
            continue
        for j in tree.query_ball_point(centre[i], reach):
            if j <= i or not alive[j] or o[j] == o[i]:
                continue
            inside_i = np.all((centre[j] >= b[i, :2]) & (centre[j] <= b[i, 2:]))
            inside_j = np.all((centre[i] >= b[j, :2]) & (centre[i] <= b[j, 2:]))
            if inside_i or inside_j:
                alive[j] = False
    if return_labels:
        return b[alive], s[alive], lab[alive]
    return b[alive], s[alive]


def default_threads() -> int:
    """This process's share of the CPU cores: ``OMP_NUM_THREADS`` where it is set (the
    user's or a scheduler's choice), else all the cores it may run on divided among the
    processes ``torchrun`` started on this machine (``LOCAL_WORLD_SIZE``)."""
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1))))


def _peak_snr(tile: np.ndarray) -> float:
    """The brightest pixel of a tile in units of its noise (median and the median absolute
    deviation scaled to a Gaussian sigma: robust to the sources in the tile, and a tenth of
    the time of iterative sigma clipping, which matters at a thousand tiles a megapixel)."""
    from astropy.stats import mad_std

    values = tile[np.isfinite(tile)]
    median, std = float(np.median(values)), float(mad_std(values))
    return float((values.max() - median) / std) if std > 0 else float("inf")


def _fill_nan(tile: np.ndarray) -> np.ndarray:
    """NaN/inf -> the median of the finite pixels (the background, as far as it is known)."""
    bad = ~np.isfinite(tile)
    if bad.any():
        good = tile[~bad]
        tile = tile.copy()
        tile[bad] = np.median(good) if good.size else 0.0
    return tile


PRECISIONS = ("auto", "fp32", "bf16")
#: Settings a config's ``finder`` dict may give (the operating point the model was made for):
#: defaults of :meth:`DetectorFinder.from_config` that its arguments override.
FINDER_KEYS = ("score_thresh", "min_snr", "min_peak_snr", "nms_thresh", "deblend", "thresh_pix")
#: Keys of a config's ``finder`` dict read by the tools, not by the finder: ``associate``
#: marks a model trained on whole physical sources (``tools/find_sources.py --associate``);
#: ``absorb_inside`` / ``absorb_score_ratio`` when a box inside a larger one is part of it.
TOOL_KEYS = ("associate", "absorb_inside", "absorb_score_ratio")


def bf16_native(device: str = "cpu") -> bool:
    """Whether ``device`` computes in bfloat16 natively (CPUs with AVX512-BF16 or AMX, GPUs
    from Ampere on); elsewhere bfloat16 is emulated and slower than float32."""
    import torch

    try:
        if str(device).startswith("cuda"):
            return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _autocast_backbone(backbone, device_type: str):
    """``backbone`` run under bfloat16 autocast, its features handed on in float32."""
    import torch

    class AutocastBackbone(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.out_channels = getattr(inner, "out_channels", None)

        def forward(self, x):
            with torch.autocast(device_type, dtype=torch.bfloat16):
                out = self.inner(x)
            return type(out)((k, v.float()) for k, v in out.items())

    return AutocastBackbone(backbone)


@register_finder("detector")
class DetectorFinder:
    """Tiled inference of a trained detector over a whole field.

    Args:
        model: a detector in eval mode (``AstroFasterRCNN``), inputs CHW in [0, 1].
        tile_size: the side of the training images (model tiles), pixels.
        beam_pixels: beam FWHM in pixels of the training images (None: no resampling).
        stretch: the training stretch (``astrodet.data.stretch``).
        overlap: tile overlap in model-tile pixels (default a sixth of ``tile_size``;
            :meth:`from_config` passes the training's ``dataloader.tile_overlap``, 16 px of
            48 for FIRST: sources up to 29" whole in one tile).
        batch_size: tiles per forward pass.
        score_thresh: keep detections at least this confident.
        nms_thresh: IoU of the NMS across tile overlaps.
        rescale: resample fields to the training beam in pixels.
        device: torch device.
        progress: a tqdm bar over the tiles.
        min_peak_snr: tiles whose brightest pixel is below this S/N (sigma-clipped median and
            standard deviation of the tile) are not shown to the network: no source there
            reaches a catalogue's peak threshold (PyBDSF's default is 5). None shows every tile.
        measure: measure each source on the field (peak, flux, shape, rms); False keeps
            positions and sizes from the boxes only.
        deblend: a box holding several separate maxima (at least ``thresh_pix`` S/N, one
            beam apart, a dip between them; :func:`astrodet.sky.measure.deblend`) gives one
            source per maximum.
        thresh_pix: the S/N of a maximum that deblending splits off (PyBDSF's
            ``thresh_pix``).
        min_snr: measured sources whose S/N (peak over the local rms) is below this are
            left out of the catalogue, as a catalogue's peak threshold does (PyBDSF's
            ``thresh_pix``, 5 by default): the network also boxes noise peaks that look like
            faint sources. None keeps every detection (with ``measure``).
        precision: ``"bf16"`` runs the backbone (the trunk's matrix products, most of the
            time on a CPU) in bfloat16 and the rest in float32; ``"fp32"`` all in float32;
            ``"auto"``: bf16 where the device computes it natively (:func:`bf16_native`).
            The box head stays in float32: in bfloat16 its boxes move by a good part of a
            pixel. The model's backbone is wrapped for this.
    """

    name = "detector"

    def __init__(
        self,
        *,
        model,
        tile_size: int,
        beam_pixels: float | None,
        stretch: str | None = "snr",
        overlap: int | None = None,
        batch_size: int = 8,
        score_thresh: float = 0.5,
        nms_thresh: float = 0.3,
        rescale: bool = True,
        device: str = "cpu",
        progress: bool = True,
        measure: bool = True,
        min_peak_snr: float | None = 4.0,
        deblend: bool = False,
        thresh_pix: float = 5.0,
        precision: str = "auto",
        min_snr: float | None = 5.0,
    ):
        if tile_size < 16:
            raise ValueError(f"tile_size must be >= 16 pixels, got {tile_size}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        import torch

        has_backbone = isinstance(getattr(model, "backbone", None), torch.nn.Module)
        if precision == "auto":
            precision = "bf16" if has_backbone and bf16_native(device) else "fp32"
        elif precision == "bf16" and not has_backbone:
            raise ValueError("precision='bf16' needs a model with a .backbone module")
        self.precision = precision
        if precision == "bf16":
            model.backbone = _autocast_backbone(model.backbone, str(device).split(":")[0])
        self.model = model.eval()
        self.tile_size = int(tile_size)
        self.beam_pixels = float(beam_pixels) if beam_pixels else None
        self.stretch = stretch
        self.overlap = int(overlap) if overlap is not None else self.tile_size // 6
        if not 0 <= self.overlap < self.tile_size:
            raise ValueError(f"overlap must be in [0, {self.tile_size}), got {self.overlap}")
        self.batch_size = max(1, int(batch_size))
        self.score_thresh = float(score_thresh)
        self.nms_thresh = float(nms_thresh)
        self.rescale = bool(rescale)
        self.device = device
        self.progress = progress
        self.measure = measure
        self.min_peak_snr = min_peak_snr
        self.deblend = bool(deblend)
        self.thresh_pix = float(thresh_pix)
        self.min_snr = float(min_snr) if min_snr else None
        self.operating_point: dict = {}  # the config's finder settings (from_config)
        self.labels = np.zeros(0, int)  # the model's labels of the last detect()'s boxes
        self.stats: dict = {}

    # ------------------------------------------------------------------ building
    @classmethod
    def from_config(
        cls,
        config_file: str | os.PathLike,
        weights: str | os.PathLike,
        *,
        overrides: Sequence[str] = (),
        num_threads: int | None = None,
        **kwargs,
    ) -> DetectorFinder:
        """Build the model of a LazyConfig, load ``weights`` strictly, read the tile size,
        tile overlap and training beam from the checkpoint's ``meta`` (what the weights were
        trained at) or else the config's ``dataloader.tile_size`` / ``.tile_overlap`` /
        ``.beam_pixels``, and the stretch from ``dataloader.test.stretch``.

        ``num_threads`` sets torch's CPU threads; None: :func:`default_threads` (the
        config's ``train.num_threads`` is a training setting and is not used here).

        A config may carry its operating point as a ``finder`` dict (keys of
        :data:`FINDER_KEYS`, e.g. ``finder = dict(score_thresh=0.7, min_snr=3.0)`` for a
        model trained on sources down to S/N 3); ``kwargs`` override it, and the finder
        keeps it as ``operating_point``.

        Raises:
            FileNotFoundError: no config or weights file.
            ValueError: the checkpoint does not fit the config's model (one line).
        """
        import torch

        from astrodet.config import LazyConfig, instantiate
        from astrodet.engine.checkpoint import Checkpointer
        from astrodet.engine.defaults import TRAINING_META_KEYS

        config_file, weights = Path(config_file), Path(weights)
        for p in (config_file, weights):
            if not p.is_file():
                raise FileNotFoundError(f"{p} not found")
        cfg = LazyConfig.apply_overrides(LazyConfig.load(str(config_file)), list(overrides))
        dl = cfg.dataloader
        if num_threads is not None and int(num_threads) < 1:
            raise ValueError(f"num_threads must be at least 1, got {num_threads}")
        torch.set_num_threads(int(num_threads or default_threads()))
        model = instantiate(cfg.model)
        try:
            rest = Checkpointer(model).load(weights, checkpointables=False)
        except RuntimeError as e:
            raise ValueError(
                f"checkpoint {weights} does not fit the model of {config_file} (trained with "
                f"another config?): {str(e).split(': ', 2)[-1][:200]}"
            ) from None
        meta = rest.get("meta") or {}
        for key in TRAINING_META_KEYS:
            if key in meta and dl.get(key) is not None and float(dl.get(key)) != float(meta[key]):
                logger.warning(
                    "%s was trained with dataloader.%s=%s, %s says %s: using the checkpoint's",
                    weights, key, meta[key], config_file, dl.get(key),
                )  # fmt: skip
        tile = meta.get("tile_size") or dl.get("tile_size") or dl.train.get("image_size")
        beam = meta.get("beam_pixels", dl.get("beam_pixels"))
        if beam is None:
            logger.warning(
                "%s has no dataloader.beam_pixels: fields are not resampled", config_file
            )
        overlap = meta.get("tile_overlap", dl.get("tile_overlap"))
        if overlap is not None:
            kwargs.setdefault("overlap", int(overlap))
        kwargs.setdefault("stretch", dl.test.get("stretch", "snr"))
        point = dict(cfg.get("finder") or {})
        unknown = sorted(set(point) - set(FINDER_KEYS) - set(TOOL_KEYS))
        if unknown:
            raise ValueError(
                f"{config_file}: finder.{unknown[0]} is not a finder setting "
                f"(one of {', '.join(FINDER_KEYS + TOOL_KEYS)})"
            )
        for key, value in point.items():
            if key in FINDER_KEYS:
                kwargs.setdefault(key, value)
        finder = cls(model=model, tile_size=int(tile), beam_pixels=beam, **kwargs)
        finder.operating_point = point
        return finder

    # ------------------------------------------------------------------ detection
    def scale_factor(self, field) -> float:
        """Model-tile pixels per field pixel (1 when not resampling)."""
        if not self.rescale or not self.beam_pixels:
            return 1.0
        f = self.beam_pixels / field.beam_pixels()
        return 1.0 if abs(f - 1.0) < 0.02 else f

    def _prepare(self, raw: np.ndarray):
        """A field tile -> the model's CHW tensor (stretched, display orientation, resampled
        to ``tile_size``), as the training images were shown."""
        import torch
        import torch.nn.functional as F

        from astrodet.data.stretch import to_rgb

        rgb = to_rgb(_fill_nan(raw)[::-1], stretch=self.stretch)  # north up, as in training
        t = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
        if t.shape[1:] != (self.tile_size, self.tile_size):
            shrink = t.shape[1] > self.tile_size
            t = F.interpolate(
                t[None],
                size=(self.tile_size, self.tile_size),
                mode="bilinear",
                align_corners=False,
                antialias=shrink,
            )[0]
        return t.clamp_(0.0, 1.0)

    def detect(self, field) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (XYXY field pixels, FITS orientation, COCO convention) and scores of the
        sources in ``field``, merged across tiles. ``self.stats`` records the tile counts,
        ``self.labels`` the boxes' labels (1-based, the model's)."""
        import torch
        from tqdm import tqdm

        f = self.scale_factor(field)
        size = max(8, int(round(self.tile_size / f)))
        overlap = min(size - 1, int(round(self.overlap / f)))
        tiles = list(field.tiles(size, overlap))
        results: list[TileBoxes] = []
        skipped = empty = 0
        batch: list = []

        def flush():
            if not batch:
                return
            with torch.no_grad():
                out = self.model([t for _, t in batch])
            for (tile, _), o in zip(batch, out):
                keep = o["scores"] >= self.score_thresh
                b = o["boxes"][keep].double().numpy()
                h, w = tile.y1 - tile.y0, tile.x1 - tile.x0
                sx, sy = w / self.tile_size, h / self.tile_size
                # display -> FITS orientation, model-tile -> field pixels (edge coordinates)
                fb = np.stack(
                    [
                        tile.x0 + b[:, 0] * sx,
                        tile.y0 + h - b[:, 3] * sy,
                        tile.x0 + b[:, 2] * sx,
                        tile.y0 + h - b[:, 1] * sy,
                    ],
                    axis=1,
                ).reshape(-1, 4)
                results.append(
                    TileBoxes(
                        tile.y0,
                        tile.x0,
                        tile.y1,
                        tile.x1,
                        fb,
                        o["scores"][keep].numpy(),
                        o["labels"][keep].numpy() if "labels" in o else np.zeros(0, int),
                    )
                )
            batch.clear()

        bar = tqdm(tiles, desc=f"{Path(field.path).name}", unit="tile", disable=not self.progress)
        for tile in bar:
            raw = field.read(tile.y0, tile.y1, tile.x0, tile.x1)
            if not np.isfinite(raw).any():
                skipped += 1
                continue
            if self.min_peak_snr and _peak_snr(raw) < self.min_peak_snr:
                empty += 1  # nothing a catalogue would list: the network need not look
                continue
            batch.append((tile, self._prepare(raw).to(self.device)))
            if len(batch) >= self.batch_size:
                flush()
        flush()
        if skipped:
            logger.info("%s: skipped %d of %d all-NaN tiles", field.path, skipped, len(tiles))
        # the margin is a model-tile pixel: 1 / f field pixels (two of a field shown at half
        # its size), so a box is called touching at the same sky distance at any resample
        margin = EDGE_MARGIN / f
        boxes, scores, self.labels = merge_tile_boxes(
            results,
            shape=field.shape,
            overlap=overlap,
            nms_thresh=self.nms_thresh,
            margin=margin,
            return_labels=True,
        )
        self.stats = {
            "tiles": len(tiles),
            "skipped_nan_tiles": skipped,
            "empty_tiles": empty,
            "scale_factor": f,
            "tile_pixels": size,
            "overlap_pixels": overlap,
            "edge_margin_pixels": margin,
            "raw_boxes": int(sum(len(r.boxes) for r in results)),
            "boxes": len(boxes),
        }
        return boxes, scores

    # ------------------------------------------------------------------ catalogue
    def find(self, field):
        """The catalogue of ``field``: detected boxes, measured on the float pixels."""
        from astrodet.sky.catalogue import coco_to_catalogue, new_catalogue

        boxes, scores = self.detect(field)
        meta = {
            "FINDER": self.name,
            "IMAGE": Path(field.path).name,
            "BEAM_MAJ": field.beam.maj,
            "BEAM_MIN": field.beam.min,
            "BEAM_PA": field.beam.pa,
            "NTILES": self.stats["tiles"],
            "PRECISN": self.precision,
            "NSKIPNAN": self.stats["skipped_nan_tiles"],
        }
        if field.pixel_scale:
            meta["PIXSCALE"] = field.pixel_scale
        if not self.measure or len(boxes) == 0:
            table = coco_to_catalogue(
                boxes, wcs=field.wcs, pixel_scale=field.pixel_scale, scores=scores, meta=meta
            )
            return table if len(boxes) else new_catalogue(meta=meta)
        meta["DEBLEND"] = self.deblend
        meta["MINSNR"] = self.min_snr or 0.0
        table = measure_field(
            field, boxes, scores, meta=meta, deblend=self.deblend, thresh_pix=self.thresh_pix
        )
        if self.min_snr:
            with np.errstate(invalid="ignore"):
                faint = ~(np.asarray(table["snr"], float) >= self.min_snr)
            if faint.any():
                logger.info(
                    "%s: %d of %d detections below S/N %g (or unmeasurable) left out",
                    field.path,
                    faint.sum(),
                    len(table),
                    self.min_snr,
                )
                table = table[~faint]
                table["source_id"] = np.arange(len(table))
            self.stats["below_min_snr"] = int(faint.sum())
        self.stats["sources"] = len(table)
        return table


def measure_field(
    field,
    boxes: np.ndarray,
    scores: np.ndarray,
    *,
    meta: dict,
    deblend: bool = False,
    thresh_pix: float = 5.0,
):
    """Measure boxes on a field chunk by chunk (a background map per chunk and its margin,
    then the sources whose centre is in the chunk), so memory stays bounded on large
    fields. Rows follow the order of ``boxes``; with ``deblend`` a box may give several
    rows (``astrodet.sky.measure.measure_sources``), one after the other."""
    from astropy.table import vstack

    from astrodet.sky.catalogue import new_catalogue
    from astrodet.sky.measure import background_map, measure_sources

    ny, nx = field.shape
    n_y, n_x = math.ceil(ny / MEASURE_CHUNK), math.ceil(nx / MEASURE_CHUNK)
    iy = np.clip(((boxes[:, 1] + boxes[:, 3]) / 2.0 // MEASURE_CHUNK).astype(int), 0, n_y - 1)
    ix = np.clip(((boxes[:, 0] + boxes[:, 2]) / 2.0 // MEASURE_CHUNK).astype(int), 0, n_x - 1)
    parts, order = [], []
    for cy, cx in sorted(set(zip(iy.tolist(), ix.tolist()))):
        inside = np.flatnonzero((iy == cy) & (ix == cx))
        b = boxes[inside]
        ry0 = max(0, min(cy * MEASURE_CHUNK, int(b[:, 1].min())) - MEASURE_MARGIN)
        rx0 = max(0, min(cx * MEASURE_CHUNK, int(b[:, 0].min())) - MEASURE_MARGIN)
        ry1 = min(ny, max((cy + 1) * MEASURE_CHUNK, math.ceil(b[:, 3].max())) + MEASURE_MARGIN)
        rx1 = min(nx, max((cx + 1) * MEASURE_CHUNK, math.ceil(b[:, 2].max())) + MEASURE_MARGIN)
        image = field.read(ry0, ry1, rx0, rx1)
        bkg, rms = background_map(image, beam_pixels=field.beam_pixels())
        table, index = measure_sources(
            image,
            b - np.array([rx0, ry0, rx0, ry0], float),
            rms=rms,
            bkg=bkg,
            beam=field.beam,
            pixel_scale=field.pixel_scale,
            scores=scores[inside],
            offset=(rx0, ry0),
            wcs=field.wcs,
            deblend=deblend,
            thresh_pix=thresh_pix,
            return_box_index=True,
        )
        parts.append(table)
        order.append(inside[index])
    table = vstack(parts) if len(parts) > 1 else parts[0]
    # back to the order of the boxes (stable: a deblended box's rows keep their order)
    table = table[np.argsort(np.concatenate(order), kind="stable")]
    columns = {c: np.asarray(table[c]) for c in table.colnames if c != "source_id"}
    return new_catalogue(meta={**dict(table.meta), **meta}, **columns)
