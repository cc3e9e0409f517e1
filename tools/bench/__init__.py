"""Parts of ``tools/benchmark.py``, one module each.

Every part module has ``run(settings, device) -> dict`` (its entry in ``benchmark.json``)
and ``rows(results) -> list[str]`` (its rows of the Markdown table); ``tools/benchmark.py``
holds the table of runners, the command line and the output folder.
"""
