"""Pure-jnp geometry: rotation conversions, similarity Procrustes, camera models, mesh operations
(normals, decimation, coarse-to-fine up/down-sampling)."""
from hmrjax.geometry import camera, mesh, procrustes, rotations

__all__ = ["camera", "mesh", "procrustes", "rotations"]
