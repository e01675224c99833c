"""The renderer on the free body model (Anny, decimated mesh): depth at visible vertices, parts, picture."""
import numpy as np

import hmrjax.body
from hmrjax.body import parts
from hmrjax.render import BODY_TO_CAMERA, Camera, Mesh, render, render_mesh_image

SOURCE = "anny_lite"


def test_depth_at_visible_vertex_pixels_of_the_body():
    body = hmrjax.body.load(SOURCE)
    yaw = 0.6  # turned, so that parts of the body hide others (rest pose: posing would cost a JAX compile)
    rot = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    v = np.asarray(body.v_template, np.float64) @ rot.T @ BODY_TO_CAMERA.T + [0.0, 0.9, 3.0]
    faces = np.asarray(body.faces)
    cam = Camera(focal=(500.0, 500.0), image_size=(256, 256))
    labels = parts.part_labels(body) + 1  # 0 is the background
    res = render(Mesh(v.astype(np.float32), faces, vertex_labels=labels), cam)
    uv = cam.project(v)
    ij = np.round(uv[:, ::-1]).astype(int)
    inside = (ij >= 0).all(1) & (ij[:, 0] < 256) & (ij[:, 1] < 256)
    fid = np.where(inside, res.face_id[ij[:, 0].clip(0, 255), ij[:, 1].clip(0, 255)], -1)
    # a vertex is visible when the face drawn at its pixel is one of its own faces
    visible = inside & (fid >= 0) & (faces[np.maximum(fid, 0)] == np.arange(len(v))[:, None]).any(1)
    assert visible.sum() > 0.2 * len(v)
    d = res.depth[ij[visible, 0], ij[visible, 1]]
    err = np.abs(d - v[visible, 2])
    # the pixel centre is up to 0.7 px from the vertex: only the surface slope across that separates them
    assert np.median(err) < 2e-3 and err.max() < 3e-2
    assert set(np.unique(res.part_seg[res.mask])) <= set(np.unique(labels))
    assert len(np.unique(res.part_seg[res.mask])) > 10


def test_render_mesh_image_of_the_body():
    body = hmrjax.body.load(SOURCE)
    img = render_mesh_image(np.asarray(body.v_template), body.faces, image_size=(96, 64))
    fg = np.any(img != 255, axis=-1)
    rows, cols = np.nonzero(fg.any(1))[0], np.nonzero(fg.any(0))[0]
    fill = max((rows.max() - rows.min() + 1) / 96, (cols.max() - cols.min() + 1) / 64)
    assert 0.7 < fill < 0.95
    # upright: the head (narrow) is the top of the silhouette
    assert fg[rows.min()].sum() < 0.2 * (cols.max() - cols.min())
