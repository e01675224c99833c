"""Mesh sizes, partition rules and path naming (single device; multi-device runs are in test_distributed.py)."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from hmrjax.train import mesh as mesh_lib


def test_mesh_shape_fills_minus_one_and_rejects_mismatch():
    assert mesh_lib.mesh_shape(-1, 1, 8) == (8, 1)
    assert mesh_lib.mesh_shape(2, -1, 8) == (2, 4)
    assert mesh_lib.mesh_shape(4, 2, 8) == (4, 2)
    with pytest.raises(ValueError, match="3 x fsdp=1 != 8"):
        mesh_lib.mesh_shape(3, 1, 8)
    with pytest.raises(ValueError, match="not divisible"):
        mesh_lib.mesh_shape(-1, 3, 8)
    with pytest.raises(ValueError, match="at most one"):
        mesh_lib.mesh_shape(-1, -1, 8)


def test_rules_first_match_wins_and_default_is_replicated():
    rules = [(r"backbone/.*/kernel$", (None, "fsdp")), (r"kernel$", ("fsdp",))]
    assert mesh_lib.spec_for(rules, "backbone/Conv_0/kernel", (3, 4)) == P(None, "fsdp")
    assert mesh_lib.spec_for(rules, "head/kernel", (3, 4)) == P("fsdp")
    assert mesh_lib.spec_for(rules, "head/bias", (4,)) == P()
    with pytest.raises(ValueError, match="head/kernel.*3 axes"):
        mesh_lib.spec_for([(r"kernel", ("fsdp", None, None))], "head/kernel", (3, 4))


def test_paths_and_shardings_on_one_device():
    tree = {"backbone": {"Conv_0": {"kernel": jnp.zeros((3, 2))}}, "head": [jnp.zeros(2), jnp.zeros(())]}
    paths = mesh_lib.map_with_paths(lambda path, _: path, tree)
    assert paths == {"backbone": {"Conv_0": {"kernel": "backbone/Conv_0/kernel"}}, "head": ["head/0", "head/1"]}
    mesh = mesh_lib.make_mesh(ml_collections.ConfigDict({"data": -1, "fsdp": 1}))
    assert mesh.shape == {"data": jax.device_count(), "fsdp": 1}
    shardings = mesh_lib.tree_shardings(mesh, [(r"kernel$", (None, "fsdp"))], jax.eval_shape(lambda: tree))
    assert shardings["backbone"]["Conv_0"]["kernel"].spec == P(None, "fsdp")
    assert shardings["head"][0].spec == P()
    batch = mesh_lib.global_batch(mesh, {"x": np.arange(6, dtype=np.float32).reshape(2, 3)})
    assert batch["x"].shape == (2, 3) and batch["x"].sharding.spec == P(("data", "fsdp"))
    np.testing.assert_array_equal(np.asarray(batch["x"]), np.arange(6).reshape(2, 3))
