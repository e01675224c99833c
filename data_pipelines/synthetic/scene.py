"""Scene sampling for the synthetic humans: split styles, camera and placement, appearance, lighting,
backgrounds (procedural textures and photographs), occluder meshes and motion blur.

Owns `SplitStyle` / `STYLES` (what differs between train, test_occluded and test_ood), `sample_camera`,
`sample_view_rotation`, `person_colors`, `sample_light`, `sample_background`, `sample_occluders` and
`motion_blur`. Everything takes an explicit `np.random.Generator`; `render_example.py` puts it together.

Camera model (BEDLAM-like): horizontal field of view ~ U[fov_deg], focal f = (W / 2) / tan(fov / 2) px
(square pixels), principal point at the image centre; the person's distance follows from the wanted
image-height fraction of its box and is clipped to `distance_m`.
"""
from __future__ import annotations

import colorsys
import dataclasses
import functools
import importlib.util
import logging
import pathlib

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from hmrjax.render import primitives
from hmrjax.render.scene import Mesh
from hmrjax.render.shading import Light

__all__ = ["SplitStyle", "STYLES", "sample_camera", "sample_view_rotation", "person_colors", "sample_light",
           "sample_background", "background_photos", "upsample", "sample_occluders", "cylinder", "motion_blur", "SKIN_TONES"]

_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SplitStyle:
    """How one split samples scenes.

    families: pose family -> weight; occluder_prob: chance of >= 1 occluder; occluders: (min, max) count
    when present; occluder_size: (min, max) side as a fraction of the person box; truncation_prob: chance
    the person is cut by the frame border; height_frac: (min, max) person-box height / image height;
    blur_prob / blur_px: motion blur chance and (min, max) kernel length at 256 px; fov_deg, distance_m:
    camera ranges; visible_frac: (min, max) fraction of the person's pixels left visible by the occluders
    (occluders are re-aimed, smaller or larger, up to 5 times; see `render_example`).
    """

    families: dict
    occluder_prob: float = 0.3
    occluders: tuple = (1, 2)
    occluder_size: tuple = (0.15, 0.45)
    truncation_prob: float = 0.1
    height_frac: tuple = (0.45, 0.9)
    blur_prob: float = 0.1
    blur_px: tuple = (3.0, 9.0)
    fov_deg: tuple = (35.0, 90.0)
    distance_m: tuple = (1.5, 12.0)
    visible_frac: tuple = (0.5, 1.0)


_COMMON = {"standing": 3.0, "walking": 2.0, "running": 1.0, "sitting": 1.0, "crouching": 0.7, "bending": 0.7,
           "arms_raised": 1.0, "throwing": 0.5, "kicking": 0.5, "lying": 0.6}
STYLES = {
    "train": SplitStyle(_COMMON),
    "validation": SplitStyle(_COMMON),
    "test": SplitStyle(_COMMON),
    # heavy occlusion: always 2-3 large objects aimed at keypoints
    "test_occluded": SplitStyle(_COMMON, occluder_prob=1.0, occluders=(2, 3), occluder_size=(0.25, 0.5),
                                truncation_prob=0.15, visible_frac=(0.3, 0.8)),
    # out of distribution: unusual athletic poses, motion blur, wider lenses
    "test_ood": SplitStyle({"running": 1.0, "throwing": 1.0, "kicking": 1.0, "crouching": 0.5, "lying": 0.5},
                           occluder_prob=0.2, blur_prob=0.8, blur_px=(5.0, 15.0), fov_deg=(60.0, 100.0)),
}


# ------------------------------------------------------------------------------------------ camera
def sample_camera(rng, style: SplitStyle, image_size) -> float:
    """Focal length (px) from a horizontal field of view ~ U[style.fov_deg]; image_size is (W, H)."""
    fov = np.deg2rad(rng.uniform(*style.fov_deg))
    return float(image_size[0] / 2.0 / np.tan(fov / 2.0))


def sample_view_rotation(rng, family: str) -> np.ndarray:
    """[3, 3] body frame (y up, z towards the viewer) -> OpenCV camera frame, with the camera pitched down by
    U[-5, 25] deg (U[15, 50] for lying people) and rolled by N(0, 3 deg)."""
    pitch = rng.uniform(15, 50) if family == "lying" else rng.uniform(-5, 25)
    roll = rng.normal(0, 3)
    view = Rotation.from_euler("zx", [roll, pitch], degrees=True).as_matrix()
    return view @ np.diag([1.0, -1.0, -1.0])


# ------------------------------------------------------------------------------------------ appearance
SKIN_TONES = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 140], [198, 134, 96], [161, 102, 70],
                       [125, 80, 55], [92, 60, 42], [70, 45, 32]], np.float64) / 255.0
_HAIR = np.array([[20, 15, 12], [60, 40, 25], [110, 75, 40], [180, 140, 80], [210, 190, 150], [120, 120, 120],
                  [150, 40, 20]], np.float64) / 255.0
# SMPL-24 part groups (part = joint index)
_TORSO = (3, 6, 9, 13, 14)
_UPPER_ARMS, _FOREARMS, _HANDS = (16, 17), (18, 19), (20, 21, 22, 23)
_PELVIS_THIGHS, _SHINS, _FEET = (0, 1, 2), (4, 5), (7, 8, 10, 11)
_HEAD_NECK = (12, 15)


def _random_color(rng, dark=0.05, bright=0.95):
    hsv = np.array([rng.uniform(), rng.uniform(0.0, 0.9), rng.uniform(dark, bright)])
    return np.array(colorsys.hsv_to_rgb(*hsv))


def _pattern(rng, rest: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Procedural texture on rest-pose vertex positions [n, 3] -> colours [n, 3]: plain, stripes, checks, noise."""
    kind = rng.choice(["plain", "stripes", "checks", "noise"], p=[0.35, 0.25, 0.2, 0.2])
    n = len(rest)
    col = np.broadcast_to(base, (n, 3)).copy()
    if kind == "plain":
        return col
    other = _random_color(rng)
    period = rng.uniform(0.03, 0.12)
    if kind == "stripes":
        axis = rest @ Rotation.random(random_state=rng).as_matrix()[:, 0] if rng.random() < 0.3 else rest[:, 1]
        sel = np.sin(2 * np.pi * axis / period + rng.uniform(0, 2 * np.pi)) > 0
        col[sel] = other
    elif kind == "checks":
        sel = (np.floor(rest[:, 0] / period) + np.floor(rest[:, 1] / period) + np.floor(rest[:, 2] / period)) % 2 == 0
        col[sel] = other
    else:
        col = col * (1.0 + rng.uniform(0.1, 0.35) * rng.standard_normal((n, 1)))
    return np.clip(col, 0.0, 1.0)


def person_colors(rng, rest_vertices: np.ndarray, vertex_parts: np.ndarray, head_joint: np.ndarray) -> np.ndarray:
    """Per-vertex albedo [V, 3] in [0, 1]: a skin tone, hair, a face, a top, a bottom and shoes with procedural
    textures, and the front/back cues real clothes and people show (`_front_back_cues`).

    rest_vertices [V, 3] (body frame, T-pose, y up, z = the body's front) drive the texture coordinates;
    vertex_parts [V] SMPL-24 parts; head_joint (3,) rest position of the head joint (hair above / behind it).
    """
    rest = np.asarray(rest_vertices, np.float64)
    parts = np.asarray(vertex_parts)
    skin = np.clip(SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.08, 3), 0, 1)
    col = np.broadcast_to(skin, rest.shape).copy()
    sleeves = rng.choice(["none", "short", "long"], p=[0.1, 0.4, 0.5])
    legs = rng.choice(["shorts", "long"], p=[0.3, 0.7])
    top_parts = list(_TORSO) + ([] if sleeves == "none" else list(_UPPER_ARMS)) + \
        (list(_FOREARMS) if sleeves == "long" else [])
    bottom_parts = list(_PELVIS_THIGHS) + (list(_SHINS) if legs == "long" else [])
    groups = ((top_parts, _random_color(rng, 0.15, 0.95)), (bottom_parts, _random_color(rng, 0.1, 0.8)),
              (list(_FEET), _random_color(rng, 0.05, 0.8)))
    for group, base in groups:
        sel = np.isin(parts, group)
        col[sel] = _pattern(rng, rest[sel], base)
    _front_back_cues(rng, rest, parts, col, np.asarray(head_joint, np.float64), skin, groups[0][1])
    return col.astype(np.float32)


def _contrasting(rng, base: np.ndarray) -> np.ndarray:
    """A random colour whose value (brightness) differs from `base`'s by at least 0.35."""
    v = max(base)
    c = _random_color(rng, 0.05, 0.95)
    if abs(max(c) - v) < 0.35:
        c = c * (0.2 / max(max(c), 1e-3)) if v > 0.5 else np.clip(c + (0.85 - max(c)), 0, 1)
    return np.clip(c, 0.0, 1.0)


def _front_back_cues(rng, rest, parts, col, head, skin, top_base):
    """Paint, in place, what tells a person's front from the back in a photo: hair on the back of the head
    (97 %; length drawn), a face (eyes, brows, lips on the front of the head), a neckline showing skin at the
    front of the top (70 %), a print on the chest (50 %) and toe caps on the shoes (50 %)."""
    _, hy, hz = head
    on_head = parts == 15
    hair = np.clip(_HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.8, 1.2), 0, 1)
    if rng.random() < 0.97:
        length = rng.uniform(0.02, 0.12)
        col[on_head & ((rest[:, 1] > hy + 0.07) | ((rest[:, 2] < hz + 0.01) & (rest[:, 1] > hy - length)))] = hair
    front = on_head & (rest[:, 2] > hz + 0.05)
    eye_y = hy + rng.uniform(0.035, 0.05)
    for sx in (-1.0, 1.0):
        d = np.hypot(rest[:, 0] - sx * 0.032, rest[:, 1] - eye_y)
        col[front & (d < 0.013)] = (0.06, 0.05, 0.05)
        brow = front & (np.abs(rest[:, 0] - sx * 0.032) < 0.022) & (np.abs(rest[:, 1] - eye_y - 0.025) < 0.007)
        col[brow] = hair * 0.8
    lips = front & (np.abs(rest[:, 0]) < 0.024) & (np.abs(rest[:, 1] - (eye_y - 0.085)) < 0.009)
    col[lips] = np.clip(skin * (0.65, 0.4, 0.4), 0, 1)
    torso = np.isin(parts, _TORSO)
    if rng.random() < 0.7:                                   # neckline: skin at the front of the collar
        neck_y = float(rest[parts == 12, 1].min())
        depth = rng.uniform(0.04, 0.14)
        v = torso & (rest[:, 2] > 0.0) & (rest[:, 1] > neck_y - depth + 1.2 * np.abs(rest[:, 0]))
        col[v] = skin
    if rng.random() < 0.5:                                   # a print on the chest
        cy, half_w, half_h = rng.uniform(0.3, 0.42), rng.uniform(0.04, 0.09), rng.uniform(0.03, 0.07)
        chest = torso & (rest[:, 2] > 0.04) & (np.abs(rest[:, 0]) < half_w) & (np.abs(rest[:, 1] - cy) < half_h)
        col[chest] = _contrasting(rng, np.asarray(top_base))
    if rng.random() < 0.5:                                   # toe caps
        col[np.isin(parts, (10, 11))] = _contrasting(rng, col[np.isin(parts, (7, 8))].mean(0))


def sample_light(rng) -> Light:
    """A directional light from above / the front with random intensity, ambient, specular and tint."""
    d = np.array([rng.uniform(-1, 1), rng.uniform(0.1, 1.0), rng.uniform(0.2, 1.0)])
    tint = np.clip(1.0 + rng.normal(0, 0.06, 3), 0.8, 1.0)
    return Light(direction=tuple(d), intensity=float(rng.uniform(0.6, 1.0)), ambient=float(rng.uniform(0.3, 0.55)),
                 specular=float(rng.uniform(0.0, 0.25)), shininess=float(rng.uniform(8, 48)), color=tuple(tint))


# ------------------------------------------------------------------------------------------ backgrounds
# scikit-image's shipped photographs without people (astronaut/camera/lfw show people: excluded)
_PHOTOS = ("brick.png", "grass.png", "gravel.png", "coffee.png", "chelsea.png", "motorcycle_left.png", "rocket.jpg",
           "hubble_deep_field.jpg", "color.png", "logo.png", "page.png", "moon.png", "text.png", "coins.png")


@functools.lru_cache(maxsize=1)
def background_photos() -> tuple:
    """The photographs shipped inside scikit-image (read from its data folder with PIL; scikit-image is not
    imported), as uint8 [h, w, 3] arrays; () when scikit-image is not installed (then backgrounds are
    procedural only)."""
    from PIL import Image
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        _LOG.warning("scikit-image is not installed: synthetic backgrounds are procedural only")
        return ()
    folder = pathlib.Path(list(spec.submodule_search_locations)[0]) / "data"
    out = []
    for name in _PHOTOS:
        path = folder / name
        if path.exists():
            with Image.open(path) as im:
                out.append(np.asarray(im.convert("RGB")))
    return tuple(out)


def upsample(grid: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bicubic resize of a small float [gh, gw] grid to [h, w] (PIL; float64 out)."""
    from PIL import Image
    im = Image.fromarray(np.ascontiguousarray(grid, np.float32))
    return np.asarray(im.resize((w, h), Image.BICUBIC), np.float64)


def _smooth_noise(rng, h, w, cells, channels=1):
    """Value noise: random [cells, cells] grids upsampled (bicubic) to [h, w, channels], roughly in [0, 1]."""
    return np.stack([upsample(rng.uniform(0, 1, (cells, cells)), h, w) for _ in range(channels)], -1)


def _procedural(rng, h, w) -> np.ndarray:
    kind = rng.choice(["gradient", "stripes", "checks", "noise", "tiles"])
    c1, c2 = _random_color(rng), _random_color(rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    if kind == "gradient":
        ang = rng.uniform(0, 2 * np.pi)
        t = (np.cos(ang) * xx + np.sin(ang) * yy)
        t = (t - t.min()) / max(np.ptp(t), 1e-6)
    elif kind == "stripes":
        ang, period = rng.uniform(0, np.pi), rng.uniform(6, 40) * w / 256
        t = (np.sin(2 * np.pi * (np.cos(ang) * xx + np.sin(ang) * yy) / period) > 0).astype(np.float64)
    elif kind == "checks":
        period = rng.uniform(8, 48) * w / 256
        t = ((np.floor(xx / period) + np.floor(yy / period)) % 2).astype(np.float64)
    elif kind == "tiles":
        period = rng.uniform(12, 60) * w / 256
        t = ((np.mod(xx, period) < 2) | (np.mod(yy, period) < 2)).astype(np.float64)
    else:
        t = _smooth_noise(rng, h, w, int(rng.integers(3, 16)))[..., 0]
    img = c1 * (1 - t[..., None]) + c2 * t[..., None]
    img = img * (1.0 + 0.15 * (_smooth_noise(rng, h, w, 6, 3) - 0.5))
    return np.clip(img * 255.0, 0, 255).astype(np.uint8)


def _photo_crop(rng, photo: np.ndarray, h, w) -> np.ndarray:
    from PIL import Image
    ph, pw = photo.shape[:2]
    scale = rng.uniform(0.4, 1.0)
    ch = max(8, int(min(ph, pw * h / w) * scale))
    cw = max(8, int(ch * w / h))
    y0, x0 = rng.integers(0, ph - ch + 1), rng.integers(0, pw - cw + 1)
    crop = photo[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    img = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((w, h), Image.BILINEAR), np.float64)
    img = img * rng.uniform(0.7, 1.15) * np.clip(1 + rng.normal(0, 0.05, 3), 0.85, 1.15) + rng.uniform(-20, 20)
    return np.clip(img, 0, 255).astype(np.uint8)


def sample_background(rng, h: int, w: int, floor_uv: np.ndarray | None = None,
                      floor_mask: np.ndarray | None = None) -> np.ndarray:
    """uint8 [h, w, 3]: a photograph crop (when scikit-image is installed; 60 %) or a procedural texture, and,
    with probability 0.5 when a floor is given, a perspective-correct tiled floor (floor_uv [h, w, 2] metres
    on the ground plane, floor_mask [h, w] bool) under it."""
    photos = background_photos()
    if photos and rng.random() < 0.6:
        img = _photo_crop(rng, photos[rng.integers(len(photos))], h, w)
    else:
        img = _procedural(rng, h, w)
    if floor_uv is not None and floor_mask is not None and floor_mask.any() and rng.random() < 0.5:
        tile = rng.uniform(0.3, 1.2)
        c1, c2 = _random_color(rng, 0.2, 0.9), _random_color(rng, 0.2, 0.9)
        u, v = floor_uv[..., 0], floor_uv[..., 1]
        t = ((np.floor(u / tile) + np.floor(v / tile)) % 2)[..., None]
        floor = (c1 * (1 - t) + c2 * t) * 255.0
        img = img.copy()
        img[floor_mask] = np.clip(floor[floor_mask], 0, 255).astype(np.uint8)
    return img


# ------------------------------------------------------------------------------------------ occluders
def cylinder(radius: float = 0.5, height: float = 1.0, segments: int = 16):
    """Closed cylinder along y, centred at the origin. Returns (vertices [2 S + 2, 3] f32, faces [4 S, 3] i32),
    counter-clockwise seen from outside."""
    a = 2 * np.pi * np.arange(segments) / segments
    ring = np.stack([radius * np.sin(a), np.zeros(segments), radius * np.cos(a)], -1)
    top, bot = ring + [0, height / 2, 0], ring + [0, -height / 2, 0]
    verts = np.concatenate([top, bot, [[0, height / 2, 0], [0, -height / 2, 0]]])
    faces = []
    ct, cb = 2 * segments, 2 * segments + 1
    for s in range(segments):
        n = (s + 1) % segments
        faces += [(s, segments + s, segments + n), (s, segments + n, n), (ct, s, n), (cb, segments + n, segments + s)]
    return verts.astype(np.float32), np.asarray(faces, np.int32)


def sample_occluders(rng, style: SplitStyle, focal: float, principal, targets_px: np.ndarray, person_near_z: float,
                     box_scale_px: float, force: bool = False, scale: float = 1.0) -> list:
    """Occluder meshes (camera frame) strictly in front of the person.

    targets_px [K, 2]: points to aim at (projected keypoints); person_near_z: the person's nearest depth (m);
    box_scale_px: person box side (px) that sets the occluder size (times `scale`). Each object is a box, cylinder or
    sphere at depth U[0.45, 0.85] * person_near_z, centred near a random target, its far side at least
    5 cm before the person. Returns a list of `hmrjax.render.Mesh` (label 0: not a body part).
    """
    if not force and rng.random() >= style.occluder_prob:
        return []
    meshes = []
    count = int(rng.integers(style.occluders[0], style.occluders[1] + 1))
    cx, cy = principal
    for _ in range(count):
        z = rng.uniform(0.45, 0.85) * person_near_z
        size_px = rng.uniform(*style.occluder_size) * box_scale_px * scale
        size = size_px * z / focal                                  # metres at depth z
        size = min(size, max(person_near_z - z - 0.05, 0.02) * 2)   # stay in front of the person
        u, v = targets_px[rng.integers(len(targets_px))] + rng.normal(0, 0.15 * size_px, 2)
        centre = np.array([(u - cx) * z / focal, (v - cy) * z / focal, z])
        kind = rng.choice(["box", "cylinder", "sphere"])
        if kind == "box":
            dims = size * rng.uniform(0.5, 1.6, 3)
            dims[2] = min(dims[2], size)
            verts, faces = primitives.box((0, 0, 0), dims)
            smooth = False
        elif kind == "cylinder":
            verts, faces = cylinder(size * rng.uniform(0.2, 0.5), size * rng.uniform(1.0, 2.5), 16)
            smooth = True
        else:
            verts, faces = primitives.ellipsoid((0, 0, 0), size * rng.uniform(0.35, 0.6, 3), 8, 12)
            smooth = True
        rot = Rotation.from_euler("xyz", rng.uniform(-0.4, 0.4, 3) * np.array([1.0, 4.0, 1.0])).as_matrix()
        v = np.asarray(verts, np.float64) @ rot.T
        # keep the whole object in front of the person: push its far side before person_near_z - 5 cm
        far = v[:, 2].max() + centre[2]
        if far > person_near_z - 0.05:
            centre = centre * ((person_near_z - 0.05 - v[:, 2].max()) / centre[2])
        col = _random_color(rng, 0.15, 0.95)
        meshes.append(Mesh((v + centre).astype(np.float32), faces, color=tuple(col), label=0, smooth=smooth))
    return meshes


# ------------------------------------------------------------------------------------------ blur
def motion_blur(image: np.ndarray, length_px: float, angle_rad: float) -> np.ndarray:
    """Linear motion blur: uint8 [H, W, 3] convolved with a normalised line kernel of `length_px` pixels."""
    n = max(int(np.ceil(length_px)) | 1, 3)
    k = np.zeros((n, n))
    c = (n - 1) / 2
    t = np.linspace(-length_px / 2, length_px / 2, 4 * n)
    xs, ys = np.round(c + t * np.cos(angle_rad)).astype(int), np.round(c + t * np.sin(angle_rad)).astype(int)
    ok = (xs >= 0) & (xs < n) & (ys >= 0) & (ys < n)
    k[ys[ok], xs[ok]] = 1.0
    k /= k.sum()
    img = image.astype(np.float32)
    out = np.stack([ndimage.convolve(img[..., ch], k, mode="nearest") for ch in range(3)], -1)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
