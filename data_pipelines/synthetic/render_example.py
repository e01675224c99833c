"""One synthetic example in the example schema, with exact ground truth: `render_example(body, seed, split, ...)`.

Frames and labels (every quantity below is exact for the stored numbers)
- The body -> camera rotation is folded into the global orientation: `pose[0]` is the root rotation in the
  OpenCV camera frame (view pitch/roll @ diag(1, -1, -1) @ body-frame yaw / laying), so with the body
  model B (no translation; the root rotates about its rest joint)
      vertices_cam = B(pose, betas).vertices + transl,     joints3d = B(pose, betas).joints + transl.
  This is what HMR methods regress (camera-frame global orient + translation).
- keypoints2d: the model's COCO-17 regressor applied to vertices_cam, projected with
  u = f x / z + W / 2, v = f y / z + H / 2 (pixel centres at integers; `focal_length` = (f, f),
  principal point at the image centre, as the schema's default).
- Visibility (column 2) by depth test against the rendered z-buffer, not guessed: keypoint k with camera
  depth z_k is visible iff its pixel (round(u), round(v)) is inside the image, the first surface there is
  the person (`depth` > 0: `depth` holds only the visible person), and depth[v, u] >= z_k - tol_k, where
  tol_k = 2 * (distance from keypoint k to the nearest rest-pose vertex) + 4 cm (`keypoint_tolerances`:
  a keypoint inside a limb is seen through that limb's own surface, not through another body part or an
  occluder).
- depth: metric z of the *visible person* surface (0 on background and occluders); mask: the same pixels;
  part_seg: SMPL-24 parts + 1 on those pixels (values 0..24; `hmrjax.body.parts.SMPL24_TO_SMPLX22` maps to
  the 22 D-PoSE body parts: hands merge into wrists); pseudo_depth: `pseudo_depth.pseudo_depth` of the
  whole scene (person, occluders, floor, wall).
- image: shaded render over the background; motion blur (when drawn) blurs the whole frame like camera
  shake, and the labels stay those of the sharp frame (the blur kernel is centred).
- bbox: the projected mesh's tight box (amodal: also outside the frame when truncated); bbox_center its
  centre, bbox_scale = 1.2 * its longer side (px).
"""
from __future__ import annotations

import functools
import zlib

import numpy as np
from scipy.spatial.transform import Rotation

from data_pipelines.synthetic import poses as poses_lib
from data_pipelines.synthetic import pseudo_depth as pd_lib
from data_pipelines.synthetic import scene as scene_lib
from data_pipelines.synthetic.lbs import NumpyBody
from hmrjax.render.raster import Camera, rasterize
from hmrjax.render.scene import Mesh, shade_fragments

__all__ = ["BBOX_PADDING", "BETA_CLIP", "example_rng", "keypoint_tolerances", "keypoint_visibility",
           "render_example", "get_body"]

BBOX_PADDING = 1.2
BETA_CLIP = 2.5


@functools.lru_cache(maxsize=4)
def get_body(name: str = "anny_lite", num_betas: int = 10) -> NumpyBody:
    """The (cached) numpy body model used to generate examples."""
    return NumpyBody(name, num_betas)


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of example `index` of `split`: depends only on (seed, split name, index)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(split.encode()), int(index)]))


def keypoint_tolerances(body: NumpyBody) -> np.ndarray:
    """[17] metres: depth-test slack of each COCO-17 keypoint (2 x its depth under the rest surface + 4 cm)."""
    cached = getattr(body, "_keypoint_tolerances", None)
    if cached is None:
        kp = body.keypoints(body.v_template)
        d = np.sqrt(((kp[:, None] - body.v_template[None]) ** 2).sum(-1)).min(1)
        cached = body._keypoint_tolerances = 2.0 * d + 0.04
    return cached


def keypoint_visibility(uv: np.ndarray, z: np.ndarray, person_depth: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """[K] float32 {0, 1}: inside the image and not hidden (see the module docstring).

    uv [K, 2] px, z [K] camera depth (m), person_depth [H, W] (0 = not the person), tol [K] m.
    """
    h, w = person_depth.shape
    col, row = np.round(uv[:, 0]).astype(np.int64), np.round(uv[:, 1]).astype(np.int64)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h) & (z > 0)
    d = np.zeros(len(uv))
    d[inside] = person_depth[row[inside], col[inside]]
    return (inside & (d > 0) & (d >= z - tol)).astype(np.float32)


def _place(rng, style, f, size_wh, verts0):
    """Camera-frame translation [3] for the posed mesh `verts0` [V, 3] (no translation yet).

    The distance gives the person's box about `style.height_frac` of the image height (clipped to
    `style.distance_m`, and pushed back until the projected box fits 96 % of the frame); the box is then
    placed uniformly inside the frame, or, with `style.truncation_prob`, cut 15-45 % by one border.
    """
    w, h = size_wh
    frame = np.array([w, h], np.float64)
    lo, hi = verts0.min(0), verts0.max(0)
    centre0 = (lo + hi) / 2
    extent = max(hi[0] - lo[0], hi[1] - lo[1], 0.3)
    z_max = style.distance_m[1]
    z = float(np.clip(f * extent / (rng.uniform(*style.height_frac) * h), *style.distance_m))
    z = max(z, (hi[2] - lo[2]) / 2 + 0.6)                   # nothing closer than ~0.6 m to the camera
    where = rng.uniform(0.0, 1.0, 2)
    truncate = rng.random() < style.truncation_prob
    axis, side, cut = int(rng.integers(2)), int(rng.integers(2)), rng.uniform(0.15, 0.45)

    def shift(z_, centre_px):                               # centre0 -> pixel centre_px at depth z_
        return np.array([(centre_px[0] - w / 2) * z_ / f, (centre_px[1] - h / 2) * z_ / f, z_]) - centre0

    def box(t):
        v = verts0 + t
        uv = f * v[:, :2] / v[:, 2:] + frame / 2
        return uv.min(0), uv.max(0)

    t = shift(z, frame / 2)
    for _ in range(4):                                      # fit the box into the frame
        b0, b1 = box(t)
        ratio = float(np.max((b1 - b0) / (0.96 * frame)))
        if ratio <= 1.0 or z >= z_max:
            break
        z = min(z * ratio * 1.02, z_max)
        t = shift(z, frame / 2)
    b0, b1 = box(t)
    size = b1 - b0
    target = np.where(size < frame, size / 2 + where * (frame - size), frame / 2)
    if truncate:
        target[axis] = size[axis] / 2 * (1 - 2 * cut) if side == 0 else frame[axis] - size[axis] / 2 * (1 - 2 * cut)
    centre_px = target - ((b0 + b1) / 2 - frame / 2)
    for _ in range(2):                                      # perspective: correct the box centre twice
        t = shift(z, centre_px)
        b0, b1 = box(t)
        centre_px = centre_px + (target - (b0 + b1) / 2)
    return shift(z, centre_px)


def render_example(seed: int, split: str, index: int, image_size=(256, 256), body: NumpyBody | None = None,
                   style: scene_lib.SplitStyle | None = None) -> dict:
    """Example `index` of `split` (deterministic in (seed, split, index)) as a dict of numpy arrays.

    image_size: (W, H). Fields: image [H, W, 3] uint8, bbox_center [2], bbox_scale [], focal_length [2],
    image_size [2], pose [24, 3], betas [K], transl [3], joints3d [24, 3], keypoints2d [17, 3], depth [H, W],
    mask [H, W] uint8, part_seg [H, W] uint8, pseudo_depth [H, W] (float32 unless noted), plus `family`
    (int32 index into `poses.FAMILIES`) and `num_occluders` (int32). See the module docstring.
    """
    body = body or get_body()
    style = style or scene_lib.STYLES[split if split in scene_lib.STYLES else "train"]
    rng = example_rng(seed, split, index)
    w, h = int(image_size[0]), int(image_size[1])
    fams = list(style.families)
    weights = np.asarray([style.families[k] for k in fams], np.float64)
    family = fams[rng.choice(len(fams), p=weights / weights.sum())]
    betas = np.clip(rng.standard_normal(body.num_betas), -BETA_CLIP, BETA_CLIP)
    pose, _ = poses_lib.sample_pose(rng, family, forward_joints=lambda p: body.forward(p, betas)[1])
    view = scene_lib.sample_view_rotation(rng, family)
    pose[0] = Rotation.from_matrix(view @ Rotation.from_rotvec(pose[0]).as_matrix()).as_rotvec()
    pose = pose.astype(np.float32).astype(np.float64)       # the stored (float32) pose is the one rendered
    betas = betas.astype(np.float32).astype(np.float64)
    verts0, joints0 = body.forward(pose, betas)
    f = scene_lib.sample_camera(rng, style, (w, h))
    transl = _place(rng, style, f, (w, h), verts0).astype(np.float32).astype(np.float64)
    verts, joints = verts0 + transl, joints0 + transl
    principal = (w / 2.0, h / 2.0)
    cam = Camera(focal=(f, f), image_size=(h, w), principal=principal)
    proj = cam.project(verts)
    x0, y0 = proj.min(0)
    x1, y1 = proj.max(0)
    bbox_center = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    bbox_scale = BBOX_PADDING * max(x1 - x0, y1 - y0)
    kp3d = body.keypoints(verts)
    kp_uv = cam.project(kp3d)

    colors = scene_lib.person_colors(rng, body.rest_vertices, body.vertex_parts,
                                     body.j_regressor[15] @ body.rest_vertices)
    person = Mesh(verts.astype(np.float32), body.faces, vertex_colors=colors,
                  vertex_labels=(body.vertex_parts + 1).astype(np.int32))
    person_alone = int((rasterize([person.vertices], [person.faces], cam).mesh_id == 0).sum())
    # occluders that leave style.visible_frac of the person's pixels visible: re-aimed up to 5 times (smaller
    # when they hid too much, larger when they missed); else the closest try (test_occluded), or none when
    # even that hides too much
    lo, hi = style.visible_frac
    forced = style.occluder_prob >= 1.0
    best, scale = None, 1.0
    for attempt in range(5):
        occ = scene_lib.sample_occluders(rng, style, f, principal, kp_uv, float(verts[:, 2].min()), bbox_scale,
                                         force=forced, scale=scale)
        meshes = [person] + occ
        frags = rasterize([m.vertices for m in meshes], [m.faces for m in meshes], cam)
        frac = float((frags.mesh_id == 0).sum()) / max(person_alone, 1)
        miss = max(lo - frac, frac - hi, 0.0) if occ else 0.0
        if best is None or miss < best[0]:
            best = (miss, frac, occ, frags)
        if miss == 0.0:
            break
        scale *= 0.75 if frac < lo else 1.2
    _, frac, occluders, frags = best
    if occluders and frac < lo and not forced:
        occluders = []
        frags = rasterize([person.vertices], [person.faces], cam)
    up = view @ np.array([0.0, 1.0, 0.0])                   # world up in the camera frame
    floor_point = verts[np.argmin(verts @ up)]
    wall = max(float(transl[2] + verts0[:, 2].mean()) * rng.uniform(1.3, 3.0), float(verts[:, 2].max()) + 0.5)
    bg_depth, floor_mask, floor_uv = pd_lib.background_geometry(f, principal, (w, h), up, floor_point, wall)
    background = scene_lib.sample_background(rng, h, w, floor_uv, floor_mask)
    light = scene_lib.sample_light(rng)
    out = shade_fragments(frags, [person] + occluders, cam, light, background)

    person_px = out.mesh_id == 0
    depth = np.where(person_px, out.depth, 0.0).astype(np.float32)
    part_seg = np.where(person_px, out.part_seg, 0).astype(np.uint8)
    scene_depth = np.where(out.mask, out.depth, bg_depth)
    pseudo = pd_lib.pseudo_depth(scene_depth, rng)
    image = out.rgb
    if rng.random() < style.blur_prob:
        image = scene_lib.motion_blur(image, rng.uniform(*style.blur_px) * w / 256.0, rng.uniform(0, np.pi))
    if rng.random() < 0.5:                                  # sensor noise
        image = np.clip(image + rng.normal(0, rng.uniform(1, 4), image.shape), 0, 255).astype(np.uint8)
    vis = keypoint_visibility(kp_uv, kp3d[:, 2], depth, keypoint_tolerances(body))
    return {
        "image": np.ascontiguousarray(image, np.uint8),
        "bbox_center": bbox_center.astype(np.float32),
        "bbox_scale": np.float32(bbox_scale),
        "focal_length": np.array([f, f], np.float32),
        "image_size": np.array([w, h], np.float32),
        "pose": pose.astype(np.float32),
        "betas": betas.astype(np.float32),
        "transl": transl.astype(np.float32),
        "joints3d": joints.astype(np.float32),
        "keypoints2d": np.concatenate([kp_uv, vis[:, None]], 1).astype(np.float32),
        "depth": depth,
        "mask": person_px.astype(np.uint8),
        "part_seg": part_seg,
        "pseudo_depth": pseudo,
        "family": np.int32(poses_lib.FAMILIES.index(family)),
        "num_occluders": np.int32(len(occluders)),
    }
