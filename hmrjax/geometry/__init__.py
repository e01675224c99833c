"""Pure-jnp geometry: rotation conversions, similarity Procrustes, camera models.

`mesh` (coarse meshes, up/down-sampling) is added and imported here by its owner.
"""
from hmrjax.geometry import camera, procrustes, rotations

__all__ = ["camera", "procrustes", "rotations"]
