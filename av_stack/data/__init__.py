"""Driving datasets: collect expert driving with noise injection into MCAP run logs (:mod:`.collect`), index and
decode them per frame (:mod:`.frames`), cache them as memory-mapped arrays (:mod:`.cache`) and serve them to
PyTorch (:mod:`.dataset`, the only module here that imports torch).

A dataset directory holds one log per (town, traffic, scenarios, seed) chunk, ``manifest.json`` (each log's
file, town, frames, seed and split; :mod:`.manifest`) and, once built, ``cache/``.
"""
