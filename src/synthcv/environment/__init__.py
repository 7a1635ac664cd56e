"""Worlds around the scene (issue #24, docs/environments.md): colour temperature of lights
(:mod:`.kelvin`), procedural rooms and their furniture (:mod:`.room`), and the light of
point, spot and area lamps for a renderer without them (:mod:`.lamps`). Environment maps are
read in :mod:`synthcv.render.environment_map`, beside the renderers that draw them."""
