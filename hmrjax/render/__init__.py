"""CPU rendering (no OpenGL, no display) and visualisation.

- `raster`: the numba z-buffer (`rasterize` -> `Fragments`: depth, face/mesh ids, barycentrics), `Camera`.
- `shading`: normals, part labels, Lambert + ambient + Blinn-Phong shading (`Light`).
- `scene`: `Mesh`, `render` (every map of a multi-mesh scene at once), `render_mesh_image` (demo picture).
- `overlay`: mesh over image, keypoints/skeletons, boxes. `colormaps`: depth/part colours, grids, PNGs.
- `primitives`: procedural meshes (ellipsoids, boxes, a capsule-man stand-in body).
"""
from hmrjax.render import colormaps, overlay, primitives, raster, scene, shading
from hmrjax.render.colormaps import depth_to_rgb, make_grid, part_palette, parts_to_rgb, save_png
from hmrjax.render.overlay import COCO17_EDGES, blend, draw_bbox, draw_keypoints, overlay_mesh
from hmrjax.render.raster import Camera, Fragments, rasterize
from hmrjax.render.scene import BODY_TO_CAMERA, Mesh, RenderOutput, render, render_mesh_image
from hmrjax.render.shading import Light

__all__ = [
    "BODY_TO_CAMERA", "COCO17_EDGES", "Camera", "Fragments", "Light", "Mesh", "RenderOutput", "blend",
    "depth_to_rgb", "draw_bbox", "draw_keypoints", "make_grid", "overlay_mesh", "part_palette", "parts_to_rgb",
    "rasterize", "render", "render_mesh_image", "save_png", "colormaps", "overlay", "primitives", "raster",
    "scene", "shading",
]
