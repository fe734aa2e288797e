"""The built-in dataset: procedural scenes in the exact layout of the MODEST Museum release.

Each background is a box-shaped room (floor, ceiling, back and side walls, pilasters, plinths,
paintings, doors and windows) seen by a level pinhole camera; its depth map is computed exactly
from that geometry. Each foreground is a drawn person-like figure. A scene stands one figure on
the floor of one room at a perspective-correct size, so the figure's depth is the floor's depth
at its feet.

Modules, each importing only those above it: ``spec`` (what to generate, shared constants),
``encoding`` (JPEG and PNG), ``room`` (geometry, ray casting, depth), ``palette`` (colour
tables and pattern sizes), ``look`` (textures, lighting, the background image), ``figures`` (the
drawn people) and ``scenes`` (placing and compositing, ``generate``).
"""

from depthseg.synthetic.room import room_depth
from depthseg.synthetic.scenes import generate, placement_geometry
from depthseg.synthetic.spec import SceneSpec

__all__ = ["SceneSpec", "generate", "placement_geometry", "room_depth"]
