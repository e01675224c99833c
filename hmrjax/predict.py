"""Single-image inference from a training run: `predict_image(workdir, image, out_dir, bbox=None)` writes the
predicted mesh (`mesh.obj`, `mesh.ply`, camera frame, metres) and `overlay.png` (mesh over the full image).

The model input is built exactly as the eval pipeline builds it (`data_pipelines.pipeline.prepare_example`
with train=False): a square crop of side `bbox_scale` around the box centre resized to the config's
image size, ImageNet normalisation, CLIFF bbox features with the default full-image focal length
f = sqrt(W^2 + H^2) and the principal point at the image centre (the schema's defaults).
"""
from __future__ import annotations

import pathlib
from typing import Optional, Sequence

import jax
import numpy as np

__all__ = ["BBOX_PADDING", "bbox_to_center_scale", "image_batch", "predict_image"]

BBOX_PADDING = 1.2  # crop side = 1.2 x the box's longer side, as the synthetic data's boxes


def bbox_to_center_scale(bbox: Optional[Sequence[float]], width: int, height: int):
    """(x0, y0, x1, y1) full-frame px -> (centre [2], square crop side) with BBOX_PADDING; None = the
    whole image (centre of the image, side = the longer image side, no padding)."""
    if bbox is None:
        return np.asarray([width / 2.0, height / 2.0], np.float32), np.float32(max(width, height))
    b = np.asarray(bbox, np.float64).reshape(-1)
    if b.shape != (4,) or not np.all(np.isfinite(b)) or b[2] <= b[0] or b[3] <= b[1]:
        raise ValueError(f"bbox must be x0 y0 x1 y1 with x1 > x0 and y1 > y0, got {list(np.asarray(bbox).ravel())}")
    center = np.asarray([(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0], np.float32)
    return center, np.float32(BBOX_PADDING * max(b[2] - b[0], b[3] - b[1]))


def image_batch(image: np.ndarray, data_config, bbox=None) -> dict:
    """Model batch (leading dim 1) for an RGB uint8 image [H, W, 3], as the eval pipeline would build it."""
    from data_pipelines import pipeline, schema
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be [H, W, 3] uint8 RGB, got {image.shape} {image.dtype}")
    h, w = image.shape[:2]
    center, scale = bbox_to_center_scale(bbox, w, h)
    record = {"image": image, "bbox_center": center, "bbox_scale": scale}
    ex = schema.complete_example(schema.validate_example(record, "image"), num_joints=int(data_config.num_joints),
                                 num_betas=int(data_config.num_betas), num_samples=int(data_config.num_heatmap_samples))
    ex.update(record_index=np.int32(-1), valid=np.float32(1.0))
    ex = pipeline.prepare_example(ex, None, data_config, train=False)
    return {k: np.asarray(v)[None] for k, v in ex.items()}


def predict_image(workdir, image_path, out_dir, bbox: Optional[Sequence[float]] = None, num_samples: int = 1,
                  step: Optional[int] = None, use_ema: Optional[bool] = None, seed: int = 0) -> dict:
    """Runs a training run's newest checkpoint on one image.

    workdir: training workdir (config.json + checkpoints/). image_path: any image PIL reads (converted to
    RGB). out_dir: created if needed. bbox: (x0, y0, x1, y1) px of the person, or None for the whole image.
    num_samples: hypotheses asked of the method (the mesh files hold hypothesis 0, the mode).
    Returns {'obj': path, 'ply': path, 'overlay': path, 'vertices': [V, 3] camera-frame metres}.
    """
    from PIL import Image

    from hmrjax import meshio, methods, render
    from hmrjax.evaluate import load_config, resolve_body, restore_variables

    path = pathlib.Path(image_path)
    if not path.exists():
        raise FileNotFoundError(f"image {path} not found")
    try:
        image = np.asarray(Image.open(path).convert("RGB"))
    except Exception as err:  # PIL raises several types for unreadable files
        raise ValueError(f"could not read image {path}: {type(err).__name__}: {err}") from err
    config = load_config(workdir)
    method = methods.create(config)
    variables, step = restore_variables(workdir, step=step, use_ema=use_ema, config=config)
    body = resolve_body(config, method)
    batch = image_batch(image, config.data, bbox)
    pred = jax.jit(lambda v, b, r: method.predict(v, b, r, num_samples=num_samples))(
        variables, batch, jax.random.PRNGKey(seed))
    vertices = np.asarray(jax.device_get(pred.vertices[0, 0]), np.float64)
    faces = np.asarray(body.faces)
    if vertices.shape[0] != faces.max() + 1:
        raise ValueError(f"the prediction has {vertices.shape[0]} vertices but the body model's faces index "
                         f"{faces.max() + 1}; cannot write a mesh")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meshio.write_obj(out / "mesh.obj", vertices, faces)
    meshio.write_ply(out / "mesh.ply", vertices, faces)
    h, w = image.shape[:2]
    cam = render.Camera(focal=tuple(float(x) for x in batch["focal_length"][0]), image_size=(h, w),
                        principal=tuple(float(x) for x in batch["princpt"][0]))
    overlay = render.overlay_mesh(image, vertices, faces, cam)
    render.save_png(out / "overlay.png", overlay)
    return {"obj": str(out / "mesh.obj"), "ply": str(out / "mesh.ply"), "overlay": str(out / "overlay.png"),
            "vertices": vertices, "step": step}
