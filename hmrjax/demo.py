"""The README's demo: load a body model, pose it, save `.obj` / `.ply` meshes and a PNG picture.

`hmrjax demo --out DIR [--model anny|PATH]` runs it. The pose is built by joint *name*, so the same
demo works for the free Anny model, SMPL, SMPL-H and SMPL-X files (joints a model lacks are skipped).
"""
from __future__ import annotations

import json
import pathlib
import time

import numpy as np

# A relaxed walking pose (axis-angle, radians) for named SMPL-family joints, in the body frame
# (y up, x towards the body's left, z forwards). Arms come down from the T-pose about z.
DEMO_POSE = {
    "left_hip": (-0.45, 0.0, 0.05),
    "right_hip": (0.35, 0.0, -0.05),
    "left_knee": (0.25, 0.0, 0.0),
    "right_knee": (0.7, 0.0, 0.0),
    "right_ankle": (-0.2, 0.0, 0.0),
    "spine1": (0.05, 0.0, 0.0),
    "left_shoulder": (0.0, 0.25, -1.1),
    "right_shoulder": (0.0, -0.25, 1.1),
    "left_elbow": (0.0, 0.6, 0.0),
    "right_elbow": (0.0, -0.9, 0.0),
    "neck": (0.1, 0.15, 0.0),
}


def demo_pose(joint_names, pose_dict=None) -> np.ndarray:
    """Axis-angle pose [J, 3] in the model's joint order from a {joint name: (x, y, z)} dict."""
    pose_dict = DEMO_POSE if pose_dict is None else pose_dict
    pose = np.zeros((len(joint_names), 3), np.float32)
    index = {name: i for i, name in enumerate(joint_names)}
    for name, aa in pose_dict.items():
        if name in index:
            pose[index[name]] = aa
    return pose


def run(out_dir, model="anny", seed=0, image_size=512):
    """Pose `model` (a shipped name or a model file) and write mesh files + a picture into `out_dir`."""
    import hmrjax
    from hmrjax import meshio
    from hmrjax.render import colormaps, render_mesh_image

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    body = hmrjax.body.load(model)
    t_load = time.perf_counter() - t0

    rng = np.random.default_rng(seed)
    pose = demo_pose(body.joint_names)[None]
    betas_list = [np.zeros((1, body.num_betas), np.float32)]
    betas_list += [rng.normal(0.0, 1.0, (1, body.num_betas)).astype(np.float32) for _ in range(2)]

    tiles, stats = [], []
    for k, betas in enumerate(betas_list):
        res = body(pose=pose, betas=betas)
        verts = np.asarray(res.vertices[0])
        tag = "mean_shape" if k == 0 else f"shape{k}"
        meshio.write_obj(out / f"{tag}.obj", verts, body.faces)
        meshio.write_ply(out / f"{tag}.ply", verts, body.faces)
        tiles.append(render_mesh_image(verts, body.faces, image_size=(image_size, image_size)))
        stats.append({"name": tag, "height_m": float(verts[:, 1].max() - verts[:, 1].min()),
                      "betas": betas[0].round(3).tolist()})
    rest = body(pose=np.zeros_like(pose), betas=betas_list[0])
    tiles.insert(0, render_mesh_image(np.asarray(rest.vertices[0]), body.faces, image_size=(image_size, image_size)))
    grid = colormaps.make_grid(tiles, nrow=len(tiles), labels=["rest pose", "mean shape", "shape 1", "shape 2"])
    colormaps.save_png(out / "demo.png", grid)

    summary = {"model": str(model), "model_type": body.model_type, "num_vertices": int(body.num_vertices),
               "num_joints": int(body.num_joints), "num_betas": int(body.num_betas),
               "load_seconds": round(t_load, 3), "meshes": stats}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
