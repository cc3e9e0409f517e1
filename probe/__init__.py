"""probe: frozen-feature linear probes, a supervised baseline and pictures of feature space."""
