"""`BodyModel`: SMPL-family linear blend skinning in JAX (SMPL, SMPL-H, SMPL-X, MANO and SMPL-layout models).

Owns the forward pass (shape and expression blend shapes, pose correctives, level-by-level forward
kinematics, skinning), the assembly of full poses from smplx-style keyword arguments (hand PCA, mean
hand pose) and the `BodyModel` pytree. Reading files is `hmrjax.body.io`; named joint sets are
`hmrjax.body.layouts`.

The computation is the one of `smplx.lbs` (Loper et al. 2015; Romero et al. 2017; Pavlakos et al. 2019):
  v_shaped = v_template + S [betas, expression]              S: shape (+ expression) blend shapes
  J        = J_regressor v_shaped                            (precomputed: J_template + (J_regressor S) coeffs)
  v_posed  = v_shaped + P vec(R[1:] - I)                      P: pose blend shapes (skipped when absent)
  G_k      = G_parent(k) [R_k | J_k - J_parent(k)]            forward kinematics, one batched matmul per tree level
  A_k      = [R^G_k | t^G_k - R^G_k J_k]                      rest -> posed transform of joint k
  v        = sum_k w_vk A_k [v_posed; 1] + transl             blended as [B, 12, V] (no [B, V, 4, 4])
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hmrjax.geometry.rotations import axis_angle_to_matrix

__all__ = ["BodyModel", "BodyOutput", "tree_levels"]

_HI = jax.lax.Precision.HIGHEST

# Joint index ranges of the pose parts per model type (smplx's full-pose order).
_PARTS = {
    "smpl": {"body": (1, 24)},
    "smplh": {"body": (1, 22), "left_hand": (22, 37), "right_hand": (37, 52)},
    "smplx": {"body": (1, 22), "jaw": (22, 23), "leye": (23, 24), "reye": (24, 25),
              "left_hand": (25, 40), "right_hand": (40, 55)},
    "mano": {"hand": (1, 16)},
}


def _matmul_nt(a, b):
    """a [M, K] @ b[N, K].T -> [M, N]. Bases are stored [N, K] (rows contiguous in K): measured 1.3-2x faster
    than [K, N] storage for XLA's CPU GEMM/GEMV at the batch sizes used here."""
    return jax.lax.dot_general(a, b, (((1,), (1,)), ((), ())), precision=_HI)


class BodyOutput(NamedTuple):
    """Result of `BodyModel.__call__` (a pytree; every array is batch-first).

    vertices:         [B, V, 3] posed mesh (metres), including `transl`.
    joints:           [B, J, 3] regressed-then-posed joints, model joint order, including `transl`.
    joints_extra:     dict name -> [B, K, 3]: 'vertex_joints' (smplx's vertex-joint-selector extras: face,
                      feet and finger tips, names in `BodyModel.vertex_joint_names`), 'landmarks' (SMPL-X
                      static face landmarks when the file has them) and each user `extra_regressors` entry
                      (regressed from the posed `vertices`), and 'mapped_vertices' [B, V_out, 3] when
                      the model was loaded with a `vertex_map` (e.g. SMPL-X vertices re-expressed on SMPL).
    joint_transforms: [B, J, 4, 4] rest-pose -> posed rigid transform of each joint (includes `transl`):
                      `vertices = sum_k weights[v, k] * joint_transforms[k] @ [v_posed; 1]`.
    pose_matrices:    [B, J, 3, 3] local joint rotations that were applied (after PCA / mean hand pose).
    """

    vertices: Any
    joints: Any
    joints_extra: dict
    joint_transforms: Any
    pose_matrices: Any


def tree_levels(parents) -> tuple:
    """Groups joints by depth in the kinematic tree.

    Args:
      parents: sequence of parent indices, -1 for roots.
    Returns:
      tuple over depth d of `(joints, parent_slots)`: `joints` are the joint ids at depth d and
      `parent_slots` the positions of their parents inside level d-1's `joints` (None at depth 0).
    """
    parents = [int(p) for p in parents]
    depth = []
    for j, p in enumerate(parents):
        depth.append(0 if p < 0 else depth[p] + 1)
    levels = []
    for d in range(max(depth) + 1):
        joints = tuple(j for j in range(len(parents)) if depth[j] == d)
        if d == 0:
            levels.append((joints, None))
        else:
            prev = {j: i for i, j in enumerate(levels[d - 1][0])}
            levels.append((joints, tuple(prev[parents[j]] for j in joints)))
    return tuple(levels)


class _StaticArray:
    """A numpy array made hashable (by content) so it can live in pytree aux data."""

    def __init__(self, array):
        self.array = np.asarray(array)
        self.array.setflags(write=False)
        self._hash = hash((self.array.shape, self.array.dtype.str, self.array.tobytes()))

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return isinstance(other, _StaticArray) and self._hash == other._hash and np.array_equal(self.array, other.array)


@dataclasses.dataclass(frozen=True)
class _Static:
    model_type: str
    parents: tuple
    joint_names: tuple
    num_betas: int
    num_expression: int
    use_pca: bool
    num_pca_comps: int
    flat_hand_mean: bool
    levels: tuple
    faces: _StaticArray
    vertex_joint_ids: tuple
    vertex_joint_names: tuple
    lmk_vertex_ids: _StaticArray | None
    num_vertices: int
    vertex_map_ids: _StaticArray | None = None
    num_pose_basis: int = 0


_LEAF_KEYS = ("v_template", "basis", "joint_template", "joint_shape_basis", "weights",
              "J_regressor", "pose_mean", "hand_components", "lmk_bary_coords", "extra_regressors",
              "vertex_map_weights")


@jax.tree_util.register_pytree_node_class
class BodyModel:
    """An SMPL-family body model; immutable, a JAX pytree (arrays are leaves, sizes/tree are static).

    Build with `hmrjax.body.load(...)`. Call with `body(pose=..., betas=...)` -> `BodyOutput`.

    Attributes:
      faces:        [F, 3] int32 numpy array.
      parents:      tuple of J parent indices (root = -1).
      joint_names:  tuple of J names.
      num_betas, num_expression, num_joints, num_vertices, model_type ('smpl' | 'smplh' | 'smplx' | 'mano'
      | the file's own type, e.g. 'anny'), use_pca, num_pca_comps, flat_hand_mean.
      v_template [V, 3], weights [V, J], J_regressor [J, V], basis [3 V, K (+ 9 (J-1))] = shape_basis (betas
      then expression) next to pose_basis (absent without posedirs), rows c * V + v (coordinate-major),
      hand_components dict side -> [C, 45], extra_regressors dict.
    """

    def __init__(self, arrays: dict, static: _Static):
        object.__setattr__(self, "_arrays", dict(arrays))
        object.__setattr__(self, "_static", static)

    # -- pytree ---------------------------------------------------------------------------------
    def tree_flatten(self):
        return tuple(self._arrays[k] for k in _LEAF_KEYS), self._static

    @classmethod
    def tree_unflatten(cls, static, children):
        return cls(dict(zip(_LEAF_KEYS, children)), static)

    def __setattr__(self, name, value):
        raise dataclasses.FrozenInstanceError(f"BodyModel is immutable (tried to set {name!r})")

    def __getattr__(self, name):
        arrays = object.__getattribute__(self, "_arrays")
        if name in arrays:
            return arrays[name]
        static = object.__getattribute__(self, "_static")
        if name in ("model_type", "parents", "joint_names", "num_betas", "num_expression", "use_pca",
                    "num_pca_comps", "flat_hand_mean", "vertex_joint_names", "num_vertices"):
            return getattr(static, name)
        raise AttributeError(f"BodyModel has no attribute {name!r}")

    def __repr__(self):
        s = self._static
        return (f"BodyModel(model_type={s.model_type!r}, num_vertices={s.num_vertices}, num_joints={self.num_joints}, "
                f"num_betas={s.num_betas}, num_expression={s.num_expression}, dtype={self.dtype})")

    @property
    def faces(self) -> np.ndarray:
        return self._static.faces.array

    @property
    def shape_basis(self):
        """[3 V, num_betas + num_expression] shape (then expression) blend shapes, rows c * V + v."""
        k = self._static.num_betas + self._static.num_expression
        return self._arrays["basis"][:, :k]

    @property
    def pose_basis(self):
        """[3 V, 9 (J - 1)] pose blend shapes (rows c * V + v), or None when the file has no posedirs."""
        if not self._static.num_pose_basis:
            return None
        return self._arrays["basis"][:, self._static.num_betas + self._static.num_expression:]

    @property
    def extra_regressors(self) -> dict:
        """name -> [K, V] vertex regressors (the file's own, e.g. 'coco17', and the user's `extra_regressors`)."""
        return dict(self._arrays["extra_regressors"])

    @property
    def num_joints(self) -> int:
        return len(self._static.parents)

    @property
    def dtype(self):
        return self._arrays["v_template"].dtype

    @property
    def hand_pose_dim(self) -> int:
        """Per-hand size of `hand_pose` / `left_hand_pose`: num_pca_comps with PCA, else 45 (axis-angle)."""
        return self._static.num_pca_comps if self._static.use_pca else 45

    # -- pose assembly --------------------------------------------------------------------------
    def _is_matrix(self, x, n: int, pose2rot) -> bool:
        """Whether a rotation input covering `n` joints holds matrices ([..., n, 3, 3] / [B, 3, 3] for n=1)."""
        if pose2rot is not None:
            return not pose2rot
        shape = jnp.shape(x)
        if n == 3 and len(shape) == 3 and shape[-2:] == (3, 3):
            raise ValueError("ambiguous [B, 3, 3] input for 3 joints: pass pose2rot=True (axis-angle) or False")
        return len(shape) >= 3 and shape[-2:] == (3, 3) and (n == 1 or shape[-3] == n)

    def _rotations_for(self, x, n: int, name: str, pose2rot, batch: int):
        """[B, n, 3, 3] matrices, or ('aa', [B, n, 3]) axis-angle, from a part input."""
        x = jnp.asarray(x, self.dtype)
        if self._is_matrix(x, n, pose2rot):
            try:
                return "mat", jnp.broadcast_to(x.reshape(-1, n, 3, 3), (batch, n, 3, 3))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{name}: expected rotation matrices [B, {n}, 3, 3], got {x.shape}") from e
        if x.size % (3 * n) or x.ndim < 1 or x.shape[-1] not in (3, 3 * n):
            raise ValueError(f"{name}: expected axis-angle [B, {n}, 3] or [B, {3 * n}], got {x.shape}")
        return "aa", jnp.broadcast_to(x.reshape(-1, n, 3), (batch, n, 3))

    def _hand_aa(self, x, side: str, name: str, pose2rot, batch: int):
        """Hand part -> ('aa' | 'mat', value); PCA coefficients [B, C] are expanded, mean pose added."""
        s = self._static
        mean = self._arrays["pose_mean"][_PARTS[s.model_type][side][0]:_PARTS[s.model_type][side][1]]
        x = jnp.asarray(x, self.dtype)
        if s.use_pca and pose2rot is not False:
            if x.shape[-1] != s.num_pca_comps:
                raise ValueError(f"{name}: expected PCA coefficients [B, {s.num_pca_comps}] (use_pca=True, "
                                 f"num_pca_comps={s.num_pca_comps}), got {x.shape}")
            comps = self._arrays["hand_components"][side]
            aa = jnp.einsum("bc,ck->bk", x.reshape(-1, s.num_pca_comps), comps, precision=_HI)
            return "aa", jnp.broadcast_to(aa.reshape(-1, 15, 3) + mean, (batch, 15, 3))
        kind, val = self._rotations_for(x, 15, name, pose2rot, batch)
        return kind, (val + mean if kind == "aa" else val)

    def _batch_size(self, *xs) -> int:
        sizes = set()
        for x in xs:
            if x is not None:
                shape = jnp.shape(x)
                if len(shape) >= 2:
                    sizes.add(int(shape[0]))
        sizes.discard(1)
        if len(sizes) > 1:
            raise ValueError(f"inconsistent batch sizes in the inputs: {sorted(sizes)}")
        return sizes.pop() if sizes else 1

    def full_pose_matrices(self, pose=None, global_orient=None, body_pose=None, hand_pose=None,
                           left_hand_pose=None, right_hand_pose=None, jaw_pose=None, leye_pose=None,
                           reye_pose=None, pose2rot=None, batch: int | None = None):
        """Assembles the local rotations [B, J, 3, 3] from a full `pose` and/or per-part keywords.

        `pose` [B, J, 3] (axis-angle) or [B, J, 3, 3] covers every model joint including the root at 0 and
        is taken as-is (absolute local rotations, as `smplx` returns in `full_pose`). Keywords override their
        slices with smplx's semantics: hand inputs are PCA coefficients [B, C] when `use_pca`, else [B, 45]
        axis-angle, and the model's mean hand pose is added unless `flat_hand_mean`. Joints not covered by
        either are at rest, except the hands, which take the mean hand pose (smplx with zero hand inputs).
        """
        s = self._static
        nj = self.num_joints
        if batch is None:
            batch = self._batch_size(pose, global_orient, body_pose, hand_pose, left_hand_pose, right_hand_pose,
                                     jaw_pose, leye_pose, reye_pose)
        parts = _PARTS.get(s.model_type, {"body": (1, nj)})
        overrides = []  # (start, stop, kind, value)
        if global_orient is not None:
            overrides.append((0, 1, *self._rotations_for(global_orient, 1, "global_orient", pose2rot, batch)))
        if body_pose is not None:
            if "body" not in parts:
                raise ValueError(f"body_pose is not defined for model_type {s.model_type!r}")
            a, b = parts["body"]
            overrides.append((a, b, *self._rotations_for(body_pose, b - a, "body_pose", pose2rot, batch)))
        for name, val in (("jaw", jaw_pose), ("leye", leye_pose), ("reye", reye_pose)):
            if val is not None:
                if name not in parts:
                    raise ValueError(f"{name}_pose is only defined for SMPL-X models (this is {s.model_type!r})")
                a, b = parts[name]
                overrides.append((a, b, *self._rotations_for(val, 1, f"{name}_pose", pose2rot, batch)))
        hands = {}
        if hand_pose is not None:
            if s.model_type == "mano":
                hands["hand"] = hand_pose
            elif "left_hand" in parts:
                hp = jnp.asarray(hand_pose)
                if hp.ndim < 3 or hp.shape[1] != 2:
                    raise ValueError(f"hand_pose for {s.model_type!r} must be [B, 2, ...] (left, right), got {hp.shape}; "
                                     "or pass left_hand_pose / right_hand_pose")
                hands["left_hand"], hands["right_hand"] = hp[:, 0], hp[:, 1]
            else:
                raise ValueError(f"hand_pose is not defined for model_type {s.model_type!r}")
        for key, val in (("left_hand", left_hand_pose), ("right_hand", right_hand_pose)):
            if val is not None:
                if key not in parts:
                    raise ValueError(f"{key}_pose is only defined for SMPL-H / SMPL-X models (this is {s.model_type!r})")
                hands[key] = val
        for key, val in hands.items():
            a, b = parts[key]
            overrides.append((a, b, *self._hand_aa(val, key, f"{key}_pose", pose2rot, batch)))

        if pose is None:
            base_kind, base = "aa", jnp.broadcast_to(self._arrays["pose_mean"], (batch, nj, 3))
        else:
            base_kind, base = self._rotations_for(pose, nj, "pose", pose2rot, batch)
        if base_kind == "aa":
            for a, b, kind, val in overrides:
                if kind == "aa":
                    base = base.at[:, a:b].set(val)
            rot = axis_angle_to_matrix(base)
        else:
            rot = base
            for a, b, kind, val in overrides:
                if kind == "aa":
                    rot = rot.at[:, a:b].set(axis_angle_to_matrix(val))
        for a, b, kind, val in overrides:
            if kind == "mat":
                rot = rot.at[:, a:b].set(val)
        return rot

    # -- forward --------------------------------------------------------------------------------
    def __call__(self, pose=None, betas=None, transl=None, expression=None, hand_pose=None, jaw_pose=None,
                 leye_pose=None, reye_pose=None, global_orient=None, body_pose=None, left_hand_pose=None,
                 right_hand_pose=None, pose2rot=None) -> BodyOutput:
        """Poses and shapes the model.

        Args:
          pose: [B, J, 3] axis-angle (radians) or [B, J, 3, 3] local rotations of ALL model joints, root at
            index 0 (SMPL convention; used as-is, no mean hand pose added). None = rest (mean hands).
          betas: [B, num_betas] shape coefficients (None = zeros; fewer columns are zero-padded).
          transl: [B, 3] translation (metres) added to vertices and joints.
          expression: [B, num_expression] SMPL-X expression coefficients.
          global_orient [B, 3], body_pose [B, Jb, 3], jaw_pose / leye_pose / reye_pose [B, 3]: override
            their slices of `pose` (smplx-style calls).
          hand_pose: MANO [B, C]; SMPL-H/X [B, 2, C] (left, right). left_hand_pose / right_hand_pose [B, C].
            C = num_pca_comps when use_pca, else 45 (axis-angle); the mean hand pose is added to these.
          pose2rot: None = infer axis-angle vs matrices from the trailing shapes; True / False forces it.
        Returns:
          `BodyOutput` (see its docstring).
        """
        s = self._static
        dt = self.dtype
        batch = self._batch_size(pose, betas, transl, expression, hand_pose, jaw_pose, leye_pose, reye_pose,
                                 global_orient, body_pose, left_hand_pose, right_hand_pose)
        rot = self.full_pose_matrices(pose, global_orient, body_pose, hand_pose, left_hand_pose, right_hand_pose,
                                      jaw_pose, leye_pose, reye_pose, pose2rot, batch)
        coeffs = [self._coeffs(betas, s.num_betas, "betas", batch)]
        if s.num_expression:
            coeffs.append(self._coeffs(expression, s.num_expression, "expression", batch))
        elif expression is not None:
            raise ValueError(f"expression is only defined for SMPL-X models with expression blend shapes "
                             f"(this is {s.model_type!r} with num_expression=0)")
        coeffs = jnp.concatenate(coeffs, axis=-1)
        nv, nj = s.num_vertices, self.num_joints

        # Per-vertex work keeps the vertex axis innermost ([B, 3, V], [B, 12, V]): plain 2-D matmuls, contiguous
        # elementwise blending, and a single transpose of the final [B, 3, V] vertices (measured 10-30x faster
        # on CPU than blending as [B, V, 12] or [V, 12, B]).
        joints_rest = self._arrays["joint_template"] + jnp.matmul(
            coeffs, self._arrays["joint_shape_basis"], precision=_HI).reshape(batch, nj, 3)
        if s.num_pose_basis:  # shape and pose blend shapes in one GEMM: [coeffs, vec(R[1:] - I)] @ basis.T
            feature = (rot[:, 1:] - jnp.eye(3, dtype=dt)).reshape(batch, -1)  # [B, 9 (J-1)]
            coeffs = jnp.concatenate([coeffs, feature], axis=-1)
        v_posed = self._arrays["v_template"].T.reshape(1, 3 * nv) + _matmul_nt(coeffs, self._arrays["basis"])
        v_posed = v_posed.reshape(batch, 3, nv)

        glob_rot, glob_t = self._forward_kinematics(rot, joints_rest)
        if transl is not None:
            transl = jnp.broadcast_to(jnp.asarray(transl, dt).reshape(-1, 3), (batch, 3))
        # Rest -> posed transforms A_k = [R_k | t_k - R_k J_k] (+ transl), blended as [B, 12, V].
        t_rel = glob_t - jnp.sum(glob_rot * joints_rest[:, :, None, :], axis=-1)
        if transl is not None:
            t_rel = t_rel + transl[:, None]
        a34 = jnp.concatenate([glob_rot, t_rel[..., None]], axis=-1)  # [B, J, 3, 4]
        a_t = a34.reshape(batch, nj, 12).transpose(0, 2, 1).reshape(batch * 12, nj)
        blended = _matmul_nt(a_t, self._arrays["weights"]).reshape(batch, 3, 4, nv)
        verts_t = (blended[:, :, 0] * v_posed[:, 0:1] + blended[:, :, 1] * v_posed[:, 1:2]
                   + blended[:, :, 2] * v_posed[:, 2:3] + blended[:, :, 3])  # [B, 3, V]
        vertices = verts_t.transpose(0, 2, 1)
        joints = glob_t if transl is None else glob_t + transl[:, None]

        extra = {}
        if s.vertex_joint_ids:
            extra["vertex_joints"] = vertices[:, np.asarray(s.vertex_joint_ids)]
        if s.lmk_vertex_ids is not None:
            tri = vertices[:, s.lmk_vertex_ids.array]  # [B, L, 3, 3]
            extra["landmarks"] = jnp.einsum("blfi,lf->bli", tri, self._arrays["lmk_bary_coords"], precision=_HI)
        if s.vertex_map_ids is not None:  # sparse [V_out, k] rows of a vertex map (e.g. SMPL-X -> SMPL)
            picked = vertices[:, s.vertex_map_ids.array]  # [B, V_out, k, 3]
            extra["mapped_vertices"] = jnp.einsum("bokc,ok->boc", picked, self._arrays["vertex_map_weights"],
                                                  precision=_HI)
        for name, reg in self._arrays["extra_regressors"].items():
            extra[name] = jnp.einsum("kv,bvi->bki", reg, vertices, precision=_HI)
        bottom = jnp.broadcast_to(jnp.asarray([0, 0, 0, 1], dt), (batch, nj, 1, 4))
        transforms = jnp.concatenate([a34, bottom], axis=-2)
        return BodyOutput(vertices=vertices, joints=joints, joints_extra=extra, joint_transforms=transforms,
                          pose_matrices=rot)

    def _coeffs(self, x, n: int, name: str, batch: int):
        if x is None:
            return jnp.zeros((batch, n), self.dtype)
        x = jnp.asarray(x, self.dtype)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[-1] > n:
            raise ValueError(f"{name}: expected [B, <= {n}] (the model was loaded with {n}), got {x.shape}")
        if x.shape[-1] < n:
            x = jnp.pad(x, ((0, 0), (0, n - x.shape[-1])))
        return jnp.broadcast_to(x, (batch, n))

    def _forward_kinematics(self, rot, joints_rest):
        """Global rotations [B, J, 3, 3] and joint positions [B, J, 3], one batched product per tree level.

        Joints are permuted once into level order so each level is a contiguous slice; 3x3 products are
        written as broadcast multiply-sums (exact in the working dtype, and cheap to compile).
        """
        parents = self._static.parents
        order = [j for joints, _ in self._static.levels for j in joints]
        where = {j: i for i, j in enumerate(order)}
        perm = np.asarray(order)
        rot_l, joints_l = rot[:, perm], joints_rest[:, perm]
        parent_l = np.asarray([where[parents[j]] if parents[j] >= 0 else i for i, j in enumerate(order)])
        offsets = joints_l - joints_l[:, parent_l]  # J_k - J_parent(k) (roots: 0, unused)
        rs, ts, start = [], [], 0
        for joints, parent_slots in self._static.levels:
            stop = start + len(joints)
            r_loc = rot_l[:, start:stop]
            if parent_slots is None:
                r_glob, t_glob = r_loc, joints_l[:, start:stop]
            else:
                ps = np.asarray(parent_slots)
                p_r, p_t = rs[-1][:, ps], ts[-1][:, ps]
                r_glob = jnp.sum(p_r[..., :, :, None] * r_loc[..., None, :, :], axis=-2)
                t_glob = jnp.sum(p_r * offsets[:, start:stop, None, :], axis=-1) + p_t
            rs.append(r_glob)
            ts.append(t_glob)
            start = stop
        inv = np.argsort(perm)
        return jnp.concatenate(rs, axis=1)[:, inv], jnp.concatenate(ts, axis=1)[:, inv]
