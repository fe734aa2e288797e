"""The built-in dataset: procedural scenes in the exact layout of the MODEST Museum release."""

from depthseg.synthetic.generator_old import SceneSpec, generate, placement_geometry, room_depth

__all__ = ["SceneSpec", "generate", "placement_geometry", "room_depth"]
