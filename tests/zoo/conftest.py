"""Zoo tests never touch the network: the reachability probe fails and the Hugging Face hub
is in offline mode for every test (tests that need other behaviour patch it themselves)."""

from __future__ import annotations

import pytest

from astrodet.zoo import weights as zoo_weights


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    def unreachable(host, port=443, timeout=5.0):
        raise zoo_weights.HubUnavailableError(f"cannot reach {host} (network disabled in tests)")

    monkeypatch.setattr(zoo_weights, "_check_reachable", unreachable)
    try:
        from huggingface_hub import constants
    except ImportError:
        return
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
