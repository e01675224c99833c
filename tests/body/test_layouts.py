"""hmrjax.body.layouts: joint names, trees, flip permutations and joint maps vs hand-written tables."""
import numpy as np
import pytest

import body_fakes
from hmrjax.body import layouts


@pytest.mark.parametrize("name,mt", [("smpl24", "smpl"), ("smplh52", "smplh"), ("smplx55", "smplx"), ("mano16", "mano")])
def test_trees_match_official_kintree(name, mt):
    lay = layouts.get_layout(name)
    assert list(lay.parents) == body_fakes.PARENTS[mt]  # transcribed independently from the released files
    assert len(lay.joint_names) == len(set(lay.joint_names)) == lay.num_joints


def test_smplx22_is_the_shared_body():
    assert layouts.SMPLX22.joint_names == layouts.SMPLX55.joint_names[:22] == layouts.SMPL24.joint_names[:22]
    assert layouts.SMPLX22.parents == layouts.SMPLX55.parents[:22]


def test_flip_permutations_against_tables():
    # COCO: nose, then (left, right) pairs.
    np.testing.assert_array_equal(layouts.flip_permutation("coco17"),
                                  [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15])
    np.testing.assert_array_equal(layouts.flip_permutation("h36m17"),
                                  [0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13])
    np.testing.assert_array_equal(layouts.flip_permutation("lsp14"), [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13])
    smpl = layouts.flip_permutation("smpl24")
    np.testing.assert_array_equal(smpl, [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20,
                                         23, 22])
    np.testing.assert_array_equal(layouts.flip_permutation("mano16"), np.arange(16))


@pytest.mark.parametrize("name", sorted(layouts.LAYOUTS))
def test_flip_is_involution_and_respects_tree(name):
    lay = layouts.get_layout(name)
    perm = layouts.flip_permutation(lay)
    np.testing.assert_array_equal(perm[perm], np.arange(lay.num_joints))
    if lay.parents is not None:  # mirrored joints have mirrored parents
        for j, p in enumerate(lay.parents):
            assert (lay.parents[perm[j]] == -1) if p < 0 else (lay.parents[perm[j]] == perm[p])
    for i, j in lay.edges:
        assert 0 <= i < lay.num_joints and 0 <= j < lay.num_joints


def test_coco_skeleton_is_the_official_one():
    # person_keypoints 'skeleton' (1-based) from the COCO annotation files
    coco_1based = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                   [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
    assert [list(e) for e in layouts.COCO17.edges] == [[a - 1, b - 1] for a, b in coco_1based]


def test_joint_maps():
    idx, valid = layouts.joint_map("smplx55", "smpl24")
    assert valid[:22].all() and not valid[22:].any()
    assert [layouts.SMPLX55.joint_names[i] for i in idx[:22]] == list(layouts.SMPL24.joint_names[:22])
    idx, valid = layouts.joint_map("smpl24", "lsp14")
    names = [layouts.SMPL24.joint_names[i] for i in idx[valid]]
    assert names == [n for n, v in zip(layouts.LSP14.joint_names, valid) if v]  # same-named joints
    assert not valid[layouts.LSP14.index("head_top")] and valid.sum() == 13
    x = np.random.default_rng(0).normal(size=(2, 24, 3))
    np.testing.assert_array_equal(x[:, idx][:, 0], x[:, 8])  # right ankle
    with pytest.raises(KeyError, match="unknown joint layout"):
        layouts.joint_map("smpl24", "nope")


def test_vertex_joint_ids_in_range():
    for mt, (nv, names, ids) in layouts.VERTEX_JOINT_IDS.items():
        assert len(names) == len(ids) and all(0 <= i < nv for i in ids), mt
    assert len(layouts.VERTEX_JOINT_IDS["smplx"][2]) == 21
