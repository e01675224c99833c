"""Rendering on the CPU: rasterization (`raster`), shading (`shading`), scenes (`scene`), overlays and
colour maps for visualisation (`overlay`, `colormaps`)."""
from hmrjax.render.raster import Camera, Fragments, rasterize
