"""Finding, reading and strictly loading trunk weights.

Resolution order for ``weights="auto"``: ``$ASTRODET_WEIGHTS/<official file>``, then the hub.
Nothing found is a :class:`WeightsNotFoundError`; a random trunk is only ever built when
``weights="none"`` is asked for. The three hub downloads (:func:`download_timm`,
:func:`download_torchvision`, :func:`download_hf`) are the only functions that touch the
network.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from astrodet.utils import weights_root

from .registry import ModelInfo

logger = logging.getLogger(__name__)

WEIGHTS_ENV = "ASTRODET_WEIGHTS"
# The variables huggingface_hub honours; torchvision downloads follow them too.
_OFFLINE_ENVS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_MAX_LISTED = 12


class WeightsNotFoundError(RuntimeError):
    """No weights could be found for a zoo name (and random weights were not asked for)."""


class CheckpointError(RuntimeError):
    """A checkpoint could not be read or does not fit the trunk exactly."""


class HubUnavailableError(RuntimeError):
    """A hub download failed (offline, unreachable, not cached)."""


def is_offline() -> bool:
    """True when ``$HF_HUB_OFFLINE`` (or ``$TRANSFORMERS_OFFLINE``) is set to a true value."""
    return any(
        os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
        for var in _OFFLINE_ENVS
    )


def local_checkpoint(info: ModelInfo) -> Path | None:
    """``$ASTRODET_WEIGHTS/<info.checkpoint>`` when both are set and the file exists."""
    root = weights_root()
    if root is None or info.checkpoint is None:
        return None
    path = root / info.checkpoint
    return path if path.is_file() else None


def not_found_message(info: ModelInfo, reason: str | None = None) -> str:
    """The one message that says which file is missing, where to get it and where to put it."""
    root = os.environ.get(WEIGHTS_ENV)
    where = f"{WEIGHTS_ENV}={root}" if root else f"{WEIGHTS_ENV} is not set"
    parts = [f"No weights found for {info.name!r} ({info.arch})."]
    if info.checkpoint:
        parts.append(
            f"Expected the official checkpoint file {info.checkpoint!r} in the folder named by "
            f"the environment variable {WEIGHTS_ENV} ({where})."
        )
        if info.url:
            parts.append(f"Download it from {info.url} into that folder,")
        parts.append("or pass the file's path as weights=<path>.")
    else:
        parts.append(
            f"This name has no official checkpoint file: pass a checkpoint path as weights=<path> "
            f"({where})."
        )
    if info.hub:
        reason = reason.rstrip(". ") if reason else ""
        parts.append(
            f"The hub ({info.hub}) was tried and is unavailable"
            + (f": {reason}." if reason else ".")
        )
    parts.append("Use weights='none' only if a randomly initialised trunk is really wanted.")
    return " ".join(parts)


# --- reading -----------------------------------------------------------------------------


def read_checkpoint(path: str | os.PathLike) -> Any:
    """Load a checkpoint file (``.pth``/``.pt``/``.pth.tar``/``.bin`` or ``.safetensors``)
    on the CPU without running arbitrary pickled code.

    Args:
        path: the checkpoint file.

    Raises:
        WeightsNotFoundError: the file does not exist.
        CheckpointError: the file is truncated, corrupt or holds objects other than tensors.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"checkpoint file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint file {str(path)!r} is empty")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise CheckpointError(
                f"reading {str(path)!r} needs the 'safetensors' package (pip install safetensors)"
            ) from exc
        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise CheckpointError(
                f"cannot read checkpoint {str(path)!r}: the file is truncated or corrupt ({exc})"
            ) from exc
    try:
        # Training checkpoints of MAE and DINO pickle their argparse options beside the weights.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc)
        if "Weights only load failed" in text and "Unsupported global" in text:
            detail = text.split("Unsupported global:", 1)[-1].split("\n", 1)[0].strip()
            raise CheckpointError(
                f"cannot read checkpoint {str(path)!r}: it holds pickled objects other than "
                f"tensors ({detail}); save its state dict alone with torch.save(state_dict, file)"
            ) from exc
        raise CheckpointError(
            f"cannot read checkpoint {str(path)!r}: the file is truncated or corrupt "
            f"({type(exc).__name__}: {text.splitlines()[0] if text else ''})"
        ) from exc


# --- strict loading ----------------------------------------------------------------------


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    more = len(keys) - _MAX_LISTED
    return shown + (f", ... ({more} more)" if more > 0 else "")


def load_state_dict_strict(
    model: nn.Module,
    state_dict: dict[str, Any],
    *,
    source: str,
    ignore: tuple[str, ...] = (),
) -> None:
    """Copy ``state_dict`` into ``model``; every model key must be present with its shape.

    Args:
        model: the module to fill.
        state_dict: converted weights, keyed like ``model.state_dict()``.
        source: the file or hub id, named in errors.
        ignore: key prefixes that the checkpoint is expected to carry and the model does not
            use (a decoder, a projection head); everything else unexpected is an error.

    Raises:
        CheckpointError: missing keys, unexpected keys or shape mismatches, all listed.
    """
    target = model.state_dict()
    used: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for key, value in state_dict.items():
        if key in target:
            used[key] = value
        elif not any(key.startswith(prefix) for prefix in ignore):
            unexpected.append(key)
    missing = [key for key in target if key not in used]
    mismatched = []
    for key, value in used.items():
        if not isinstance(value, torch.Tensor):
            mismatched.append(f"{key} (not a tensor: {type(value).__name__})")
        elif value.shape != target[key].shape:
            mismatched.append(
                f"{key} (checkpoint {tuple(value.shape)} vs trunk {tuple(target[key].shape)})"
            )
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing keys ({len(missing)}): {_listing(missing)}")
        if unexpected:
            problems.append(f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
        if mismatched:
            problems.append(f"shape mismatches ({len(mismatched)}): {_listing(mismatched)}")
        hint = (
            " The checkpoint is of another architecture or size than the trunk built"
            " (check the name and the model kwargs)."
            if mismatched or (missing and unexpected)
            else ""
        )
        raise CheckpointError(
            f"checkpoint {source!r} does not fit the trunk exactly: "
            + "; ".join(problems)
            + "."
            + hint
        )
    model.load_state_dict(
        {k: v.to(dtype=target[k].dtype) for k, v in used.items()},
        strict=True,
    )


# --- hub downloads -----------------------------------------------------------------------


def _check_reachable(host: str, port: int = 443, timeout: float = 5.0) -> None:
    """Fail fast instead of letting a download hang or retry when there is no network."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise HubUnavailableError(f"cannot reach {host} ({exc})") from exc


def _require_url(url: str) -> None:
    """Fail fast unless ``url`` is in torch's hub cache (where torch and timm keep URL
    downloads) or can be fetched now."""
    from torch.hub import get_dir

    cached = Path(get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if cached.is_file():
        return
    if is_offline():
        raise HubUnavailableError(f"offline mode and {cached} is not cached")
    _check_reachable(urlparse(url).hostname or "")


def _hf_hub_unavailable() -> str | None:
    """Why the Hugging Face hub cannot be used now (offline mode, or a quick probe cannot
    reach it), else None; downloads then read the local cache only instead of retrying for
    about a minute."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    endpoint = urlparse(constants.ENDPOINT)
    try:
        _check_reachable(
            endpoint.hostname or "huggingface.co",
            endpoint.port or (80 if endpoint.scheme == "http" else 443),
        )
    except HubUnavailableError as exc:
        logger.warning("%s; using the local Hugging Face cache only", exc)
        return str(exc)
    return None


# Weights files of a Hugging Face model repository, preferred first.
HF_WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")


def hf_weights_file(repo_id: str, filenames: tuple[str, ...] = HF_WEIGHTS_FILES) -> str:
    """Local path of a Hugging Face repository's weights file, downloaded unless cached.

    Args:
        repo_id: ``owner/name``, optionally ``@revision``.
        filenames: candidates, tried in order.

    Raises:
        HubUnavailableError: offline or unreachable and not cached, or no such file.
    """
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise HubUnavailableError("the 'huggingface_hub' package is not installed") from exc
    repo, _, revision = repo_id.partition("@")
    unavailable = _hf_hub_unavailable()
    errors: dict[str, list[str]] = {}
    for filename in filenames:
        try:
            return hf_hub_download(
                repo, filename, revision=revision or None, local_files_only=bool(unavailable)
            )
        except Exception as exc:
            if unavailable:
                reason = f"not in the local Hugging Face cache and {unavailable}"
            else:
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0].rstrip(". ")
            errors.setdefault(reason, []).append(filename)
    raise HubUnavailableError(
        f"Hugging Face {repo_id!r}: "
        + "; ".join(f"{', '.join(files)}: {reason}" for reason, files in errors.items())
    )


def download_timm(model_name: str) -> dict[str, torch.Tensor]:
    """Pretrained weights of a timm model (timm's own layout, head removed).

    Weights hosted on the Hugging Face hub are fetched with :func:`hf_weights_file` (cache
    only when the hub is unreachable); others from their URL through timm.

    Args:
        model_name: timm name with its pretrained tag, e.g. ``vit_base_patch16_224.mae``.

    Raises:
        HubUnavailableError: offline, unreachable or not cached.
    """
    import timm
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name)
    overlay = None
    if cfg is not None and cfg.hf_hub_id:
        names = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else HF_WEIGHTS_FILES
        overlay = {"file": hf_weights_file(cfg.hf_hub_id, names)}
    elif cfg is not None and cfg.url:
        _require_url(cfg.url)
    try:
        model = timm.create_model(
            model_name, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay
        )
    except Exception as exc:
        raise HubUnavailableError(f"timm could not fetch {model_name!r} ({exc})") from exc
    return model.state_dict()


def download_torchvision(weights_name: str) -> dict[str, torch.Tensor]:
    """The state dict of a torchvision weights enum, e.g. ``ResNet50_Weights.IMAGENET1K_V2``.

    A file already in torch's hub cache is used without the network.

    Raises:
        HubUnavailableError: offline and not cached, or unreachable.
    """
    import torchvision
    from torch.hub import load_state_dict_from_url

    try:
        weights = torchvision.models.get_weight(weights_name)
    except Exception as exc:
        raise HubUnavailableError(f"unknown torchvision weights {weights_name!r}") from exc
    _require_url(weights.url)
    try:
        return load_state_dict_from_url(weights.url, progress=False, map_location="cpu")
    except Exception as exc:
        raise HubUnavailableError(f"download of {weights.url} failed ({exc})") from exc


def download_hf(repo_id: str) -> dict[str, torch.Tensor]:
    """The weights of a Hugging Face model repository (its own layout): ``model.safetensors``,
    else ``pytorch_model.bin``. Honours ``HF_HUB_OFFLINE`` (cache only).

    Raises:
        HubUnavailableError: offline and not cached, or unreachable.
    """
    return read_checkpoint(hf_weights_file(repo_id))


def fetch_hub(hub: str) -> Any:
    """Download ``"<provider>:<id>"`` (provider ``timm``, ``torchvision`` or ``hf``).

    Raises:
        HubUnavailableError: the download failed.
    """
    provider, _, ident = hub.partition(":")
    if provider == "timm":
        return download_timm(ident)
    if provider == "torchvision":
        return download_torchvision(ident)
    if provider == "hf":
        return download_hf(ident)
    raise ValueError(f"unknown hub provider in {hub!r}")
