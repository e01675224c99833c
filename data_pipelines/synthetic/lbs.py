"""A float64 numpy forward pass of a body-model file (linear blend skinning), for the dataset renderer.

Owns `NumpyBody`: the same maths as `hmrjax.body.BodyModel` (shape blend shapes, optional pose blend
shapes, forward kinematics, LBS; joints = posed joint positions) written with numpy, so that data
generation runs in worker processes without JAX compiles, and so the tests can compare the stored
labels with the JAX model as an independent implementation. Also carries what the scene needs from the
model: faces, SMPL-24 vertex part labels, the COCO-17 regressor and the beta standard deviations.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = ["NumpyBody", "axis_angle_to_matrix"]


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """[..., 3] axis-angle (rad) -> [..., 3, 3] rotation matrices, float64 (scipy, exact at angle 0)."""
    aa = np.asarray(aa, np.float64)
    return Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(aa.shape[:-1] + (3, 3))


class NumpyBody:
    """A body model (SMPL file layout) evaluated with numpy in float64.

    Attributes: faces [F, 3] int32, parents [J] (root -1), num_joints J, num_betas K, num_vertices V,
    vertex_parts [V] int (SMPL-24 part index 0..23, `hmrjax.body.parts.part_labels`),
    coco17 [17, V] float64 regressor, beta_std [K] (1 where the file has none), rest_vertices [V, 3].
    """

    def __init__(self, name_or_path: str = "anny_lite", num_betas: int = 10):
        from hmrjax.body import io, keypoints, parts

        path = io.resolve_model_path(name_or_path)
        raw = dict(io.read_model_file(path))
        arrays = io.validate_model_arrays(raw, str(path))
        self.name = str(name_or_path)
        self.v_template = np.asarray(arrays["v_template"], np.float64)
        shapedirs = np.asarray(arrays["shapedirs"], np.float64)
        if num_betas > shapedirs.shape[-1]:
            raise ValueError(f"{path}: num_betas={num_betas} but the model has {shapedirs.shape[-1]} shape components")
        self.num_betas = int(num_betas)
        self.shapedirs = shapedirs[:, :, :num_betas]
        self.posedirs = None if arrays.get("posedirs") is None else np.asarray(arrays["posedirs"], np.float64)
        self.j_regressor = np.asarray(arrays["J_regressor"], np.float64)
        self.weights = np.asarray(arrays["weights"], np.float64)
        self.parents = np.asarray(arrays["parents"], np.int64)
        self.faces = np.asarray(arrays["f"], np.int32)
        self.num_joints = len(self.parents)
        self.num_vertices = self.v_template.shape[0]
        if self.num_joints != 24:
            raise ValueError(f"{path}: the synthetic scenes need a 24-joint (SMPL layout) body model, "
                             f"got {self.num_joints} joints")
        self.vertex_parts = parts.part_labels(arrays, "smpl24")
        self.coco17 = keypoints.keypoint_regressor(raw, "coco17", dtype=np.float64)
        std = raw.get("beta_std")
        self.beta_std = (np.ones(num_betas) if std is None else np.asarray(std, np.float64)[:num_betas])
        self.rest_vertices = self.v_template

    def shaped(self, betas: np.ndarray):
        """betas [K] -> (rest-pose vertices [V, 3], rest joints [J, 3]) for this shape."""
        betas = np.asarray(betas, np.float64)
        if betas.shape != (self.num_betas,):
            raise ValueError(f"betas must be [{self.num_betas}], got {betas.shape}")
        v = self.v_template + self.shapedirs @ betas
        return v, self.j_regressor @ v

    def forward(self, pose: np.ndarray, betas: np.ndarray):
        """pose [J, 3] axis-angle (rad), betas [K] -> (vertices [V, 3], joints [J, 3]) in metres, float64.

        No translation: the root joint stays at its rest position (rotations are about the joints).
        """
        pose = np.asarray(pose, np.float64)
        if pose.shape != (self.num_joints, 3):
            raise ValueError(f"pose must be [{self.num_joints}, 3], got {pose.shape}")
        rot = axis_angle_to_matrix(pose)
        v, j_rest = self.shaped(betas)
        if self.posedirs is not None:
            feat = (rot[1:] - np.eye(3)).reshape(-1)
            v = v + self.posedirs @ feat
        glob_r = np.zeros_like(rot)
        glob_t = np.zeros((self.num_joints, 3))
        for k in range(self.num_joints):
            p = self.parents[k]
            if p < 0:
                glob_r[k], glob_t[k] = rot[k], j_rest[k]
            else:
                glob_r[k] = glob_r[p] @ rot[k]
                glob_t[k] = glob_r[p] @ (j_rest[k] - j_rest[p]) + glob_t[p]
        t_rel = glob_t - np.einsum("jab,jb->ja", glob_r, j_rest)
        a_r = np.einsum("vj,jab->vab", self.weights, glob_r)
        a_t = self.weights @ t_rel
        verts = np.einsum("vab,vb->va", a_r, v) + a_t
        return verts, glob_t

    def keypoints(self, vertices: np.ndarray) -> np.ndarray:
        """[V, 3] -> COCO-17 keypoints [17, 3] (the model's regressor)."""
        return self.coco17 @ np.asarray(vertices, np.float64)
