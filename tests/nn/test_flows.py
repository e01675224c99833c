"""Tests for hmrjax.nn.flows: invertibility, log-determinants vs jax.jacfwd, densities vs scipy."""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from hmrjax.nn import flows
from hmrjax.nn.flows import ConditionalRealNVP

COND_DIM = 5
HIDDEN = 32  # small conditioners keep the suite fast; the paper width is checked by shape only
BLOCKS = 3  # the paper's 8 blocks are checked by shape only (compile time grows with blocks)


def _random_params(shapes, seed=0, scale=0.2):
    """A random non-identity flow: numpy draws for every parameter, incl. the zero-initialised last layers
    (cheaper than compiling `init` for configurations whose real initialisation is not under test)."""
    rng = np.random.RandomState(seed)
    leaves, treedef = jax.tree_util.tree_flatten(shapes)
    out = [scale * rng.standard_normal(a.shape).astype(np.float32) /
           (math.sqrt(a.shape[0]) if len(a.shape) == 2 else 1.0) for a in leaves]
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(a) for a in out])


@functools.lru_cache(maxsize=None)
def _setup(dim, volume_preserving=False, two_sided=True, num_blocks=BLOCKS):
    """Model, random (non-identity) variables and jitted methods (built once per configuration)."""
    model = ConditionalRealNVP(dim=dim, num_blocks=num_blocks, hidden=HIDDEN, clamp=2.0,
                               volume_preserving=volume_preserving, two_sided=two_sided, seed=3)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, dim)), jnp.zeros((1, COND_DIM)))

    def round_trip(v, x, c):
        z, ld_inv = model.apply(v, x, c, method=model.inverse)
        return (z, ld_inv) + model.apply(v, z, c, method=model.forward)

    fns = dict(
        round_trip=jax.jit(round_trip),
        inverse=jax.jit(functools.partial(model.apply, method=model.inverse)),
        forward=jax.jit(functools.partial(model.apply, method=model.forward)),
        log_prob=jax.jit(functools.partial(model.apply, method=model.log_prob)),
    )
    return model, _random_params(shapes), fns


@functools.lru_cache(maxsize=None)
def _init_variables(dim):
    """The module's own initialisation (zero last layers -> identity couplings) for a RealNVP config."""
    model = _setup(dim)[0]
    return jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, dim)), jnp.zeros((1, COND_DIM)))


def _data(dim, batch=(3,), seed=1):
    kx, kc = jax.random.split(jax.random.PRNGKey(seed))
    return jax.random.normal(kx, batch + (dim,)), jax.random.normal(kc, batch[:1] + (COND_DIM,))


@pytest.mark.parametrize("dim", [144, 132])  # 24 joints x 6 (default body), 22 x 6 (SMPL-X body)
@pytest.mark.parametrize("volume_preserving", [False, True], ids=["realnvp", "nice"])
def test_round_trip_and_log_det_consistency(dim, volume_preserving):
    _, var, fns = _setup(dim, volume_preserving)
    x, c = _data(dim)
    z, ld_inv, x_rec, ld_fwd = fns["round_trip"](var, x, c)
    assert float(jnp.max(jnp.abs(z - x))) > 1e-2  # the perturbed flow is not the identity
    np.testing.assert_array_less(np.abs(np.asarray(x_rec - x)), 1e-5)
    np.testing.assert_allclose(np.asarray(ld_fwd), -np.asarray(ld_inv), atol=1e-5)
    if volume_preserving:
        assert np.all(np.asarray(ld_inv) == 0.0) and np.all(np.asarray(ld_fwd) == 0.0)
    else:
        assert float(jnp.min(jnp.abs(ld_inv))) > 1e-2


@pytest.mark.parametrize("dim", [144, 132])
def test_log_det_matches_jacfwd(dim):
    model, var, fns = _setup(dim)
    x, c = _data(dim, batch=(1,), seed=7)

    @jax.jit
    def jacobians(v, xi, ci):
        inv = jax.jacfwd(lambda u: model.apply(v, u, ci, method=model.inverse)[0])(xi)
        fwd = jax.jacfwd(lambda u: model.apply(v, u, ci, method=model.forward)[0])(xi)
        return inv, fwd

    jac_inv, jac_fwd = (np.asarray(j, np.float64) for j in jacobians(var, x[0], c[0]))
    _, ld = fns["inverse"](var, x, c)
    sign, ref = np.linalg.slogdet(jac_inv)
    assert sign != 0 and abs(ref) > 1e-2
    assert abs(float(ld[0]) - ref) < 1e-4, (float(ld[0]), ref)
    _, ld_f = fns["forward"](var, x, c)
    assert abs(float(ld_f[0]) - np.linalg.slogdet(jac_fwd)[1]) < 1e-4


def test_nice_jacobian_has_unit_determinant():
    model, var, _ = _setup(144, True)
    x, c = _data(144, batch=(1,))
    jac = np.asarray(jax.jit(jax.jacfwd(lambda xi: model.apply(var, xi, c[0], method=model.inverse)[0]))(x[0]),
                     np.float64)
    assert abs(np.linalg.slogdet(jac)[1]) < 1e-4


@pytest.mark.parametrize("dim", [144, 132])
def test_identity_init_is_standard_normal(dim):
    model, _, fns = _setup(dim)
    var0 = _init_variables(dim)
    x, c = _data(dim, batch=(4,), seed=2)
    ref = scipy.stats.multivariate_normal(mean=np.zeros(dim), cov=np.eye(dim)).logpdf(np.asarray(x, np.float64))
    np.testing.assert_allclose(np.asarray(fns["log_prob"](var0, x, c)), ref, rtol=1e-6, atol=1e-3)
    z, ld = fns["inverse"](var0, x, c)
    np.testing.assert_array_equal(np.asarray(ld), 0.0)
    # At init the flow is the composition of the fixed permutations.
    perm = np.arange(dim)
    for p in flows.fixed_permutations(dim, BLOCKS, "fixed_random", seed=3):
        perm = perm[p]
    np.testing.assert_array_equal(np.asarray(z), np.asarray(x)[:, perm])
    mode, lp = jax.jit(functools.partial(model.apply, method=model.mode))(var0, c)
    np.testing.assert_array_equal(np.asarray(mode), 0.0)
    np.testing.assert_allclose(np.asarray(lp), -0.5 * dim * math.log(2 * math.pi), rtol=1e-6)


def test_batch_and_condition_broadcasting():
    model, var, fns = _setup(144)
    x, c = _data(144, batch=(2, 3), seed=4)  # x [B=2, S=3, D], c [B=2, C]
    lp = fns["log_prob"](var, x, c)
    assert lp.shape == (2, 3)
    flat = fns["log_prob"](var, x.reshape(6, 144), jnp.repeat(c, 3, axis=0))
    np.testing.assert_allclose(np.asarray(lp).reshape(6), np.asarray(flat), rtol=1e-5, atol=1e-4)
    # The condition matters: another condition gives another density.
    other = fns["log_prob"](var, x, c[::-1])
    assert float(jnp.max(jnp.abs(other - lp))) > 1e-3
    # Unbatched single example works too.
    single = fns["log_prob"](var, x[1, 2], c[1])
    np.testing.assert_allclose(float(single), float(lp[1, 2]), rtol=1e-5)


def test_sample_mode_and_distrax_distribution():
    model, var, fns = _setup(144)
    _, c = _data(144, batch=(2,), seed=5)

    @jax.jit
    def run(v, cc, x_eval):
        xs, lps = model.apply(v, jax.random.PRNGKey(9), cc, 6, True, method=model.sample)
        mode, mode_lp = model.apply(v, cc, method=model.mode)
        d_lp = model.apply(v, cc, method=lambda m, cc: m.distribution(cc).log_prob(x_eval))
        s, slp = model.apply(v, cc, method=lambda m, cc: m.distribution(cc).sample_and_log_prob(
            seed=jax.random.PRNGKey(1)))
        return xs, lps, mode, mode_lp, d_lp, s, slp

    x_eval = _data(144, batch=(2,), seed=8)[0]
    xs, lps, mode, mode_lp, d_lp, s, slp = run(var, c, x_eval)
    assert xs.shape == (2, 6, 144) and lps.shape == (2, 6) and s.shape == (2, 144)
    np.testing.assert_allclose(np.asarray(fns["log_prob"](var, xs, c)), np.asarray(lps), rtol=1e-5, atol=2e-3)
    np.testing.assert_allclose(np.asarray(xs[:, 0]), np.asarray(mode), atol=1e-6)
    np.testing.assert_allclose(np.asarray(lps[:, 0]), np.asarray(mode_lp), rtol=1e-6)
    assert float(jnp.min(jnp.std(xs[:, 1:], axis=1))) > 0  # the other samples differ
    # The distrax.Transformed view agrees with the module's own log_prob and sampler.
    np.testing.assert_allclose(np.asarray(d_lp), np.asarray(fns["log_prob"](var, x_eval, c)), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(slp), np.asarray(fns["log_prob"](var, s, c)), rtol=1e-5, atol=2e-3)


def test_gradients_finite_and_reach_every_conditioner():
    model, _, _ = _setup(132)
    var0 = _init_variables(132)
    x, c = _data(132, batch=(4,), seed=6)
    x = 0.5 * x + 0.3  # not standard normal, so the identity flow is not optimal

    grads = jax.jit(jax.grad(lambda v: -jnp.mean(model.apply(v, x, c, method=model.log_prob))))(var0)
    leaves = jax.tree_util.tree_leaves_with_path(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for _, g in leaves)
    last = {jax.tree_util.keystr(p): float(jnp.abs(g).max()) for p, g in leaves if "dense_2" in jax.tree_util.keystr(p)}
    assert len(last) == 2 * 2 * BLOCKS  # kernel + bias of the last layer of every conditioner
    assert all(v > 0 for v in last.values()), last


def test_jit_matches_eager_and_one_sided_variant():
    model, var, fns = _setup(144)
    x, c = _data(144)
    eager = model.apply(var, x[:1], c[:1], method=model.log_prob)
    np.testing.assert_allclose(np.asarray(fns["log_prob"](var, x, c))[:1], np.asarray(eager), rtol=1e-5, atol=1e-4)
    m1, var1, fns1 = _setup(144, False, False)
    assert set(var1["params"]) == {f"block{k}_a" for k in range(BLOCKS)}
    z, ld, x_rec, ld2 = fns1["round_trip"](var1, x, c)
    np.testing.assert_array_less(np.abs(np.asarray(x_rec - x)), 1e-5)
    np.testing.assert_allclose(np.asarray(ld), -np.asarray(ld2), atol=1e-5)


def test_odd_dimension_round_trip_and_jacobian():
    model, var, fns = _setup(7, num_blocks=2)  # halves of 3 and 4
    x, c = _data(7)
    z, ld, x_rec, _ = fns["round_trip"](var, x, c)
    np.testing.assert_array_less(np.abs(np.asarray(x_rec - x)), 1e-5)
    jac = jax.jacfwd(lambda xi: model.apply(var, xi, c[0], method=model.inverse)[0])(x[0])
    assert abs(float(ld[0]) - np.linalg.slogdet(np.asarray(jac, np.float64))[1]) < 1e-5


def test_soft_clamp_forms():
    s = np.linspace(-50, 50, 101)
    a = np.asarray(flows.soft_clamp(jnp.asarray(s), 2.0, "atan"), np.float64)
    np.testing.assert_allclose(a, 2.0 * (2 / np.pi) * np.arctan(s / 2.0), rtol=1e-6, atol=1e-6)
    f = np.asarray(flows.soft_clamp(jnp.asarray(s), 2.0, "freia"), np.float64)
    np.testing.assert_allclose(f, 2.0 * 0.636 * np.arctan(s), rtol=1e-6, atol=1e-6)
    assert np.all(np.abs(a) < 2.0) and np.all(np.abs(f) < 2.0)
    slope = jax.grad(lambda u: flows.soft_clamp(u, 2.0, "atan"))(0.0)
    assert abs(float(slope) - 2 / np.pi) < 1e-6
    np.testing.assert_array_equal(np.asarray(flows.soft_clamp(jnp.asarray(s), 0.0)), s.astype(np.float32))
    with pytest.raises(ValueError, match="form"):
        flows.soft_clamp(jnp.zeros(2), 2.0, "tanh")


def test_clamp_bounds_log_det():
    """With huge conditioner outputs every coupling's |log-scale| stays below clamp."""
    model, _, fns = _setup(132)
    var0 = _init_variables(132)
    big = jax.tree_util.tree_map(lambda a: a + 50.0, var0)
    x, c = _data(132)
    _, ld = fns["inverse"](big, x, c)
    assert np.all(np.isfinite(np.asarray(ld)))
    # |s| < clamp per dimension and coupling (float32 atan saturates to exactly clamp at +-inf).
    assert float(jnp.max(jnp.abs(ld))) <= 2.0 * 132 * BLOCKS * (1 + 1e-6)


def test_permutations_match_freia_seeding():
    perms = flows.fixed_permutations(12, 3, "fixed_random", seed=0)
    for k in range(3):
        np.random.seed(k)  # FrEIA PermuteRandom(seed=k)
        np.testing.assert_array_equal(perms[k], np.random.permutation(12))
    np.testing.assert_array_equal(flows.fixed_permutations(5, 2, "reverse")[1], [4, 3, 2, 1, 0])
    with pytest.raises(ValueError, match="permutation"):
        flows.fixed_permutations(5, 2, "shuffle")
    with pytest.raises(ValueError, match="perm"):
        flows.Permute([0, 0, 1])


def test_paper_configuration_shapes():
    """Paper width (1024 hidden, 3 layers, 8 GLOW blocks) on the 979-d condition; shapes only."""
    dim, cdim, h = 132, 979, 1024
    model = ConditionalRealNVP(dim=dim)
    assert model.clamp == 2.0 and model.clamp_form == "freia" and model.num_blocks == 8 and model.two_sided
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((2, dim)), jnp.zeros((2, cdim)))
    half = dim // 2
    per_mlp = (half + cdim) * h + h + h * h + h + h * 2 * half + 2 * half
    assert flows.num_params(shapes) == 16 * per_mlp
    out = jax.eval_shape(lambda v, k, c: model.apply(v, k, c, 100, method=model.sample), shapes,
                         jax.random.PRNGKey(0), jnp.zeros((2, cdim)))
    assert out[0].shape == (2, 100, dim) and out[1].shape == (2, 100)


def test_bad_inputs_raise_clear_errors():
    model, var, _ = _setup(144)
    with pytest.raises(ValueError, match=r"\[\.\.\., 144\]"):
        model.apply(var, jnp.zeros((2, 143)), jnp.zeros((2, COND_DIM)), method=model.log_prob)
    with pytest.raises(ValueError, match="cond"):
        model.apply(var, jnp.zeros((2, 144)), jnp.zeros((3, COND_DIM)), method=model.log_prob)
    with pytest.raises(ValueError, match="clamp_form"):
        ConditionalRealNVP(dim=8, clamp_form="tanh").init(jax.random.PRNGKey(0), jnp.zeros((1, 8)), jnp.zeros((1, 2)))


@pytest.mark.interop
@pytest.mark.parametrize("dim", [12, 7])
def test_matches_authors_freia_flow(dim):
    """Same weights in the authors' FrEIA 0.2 graph (humr `train/models/freia_nf.py`: GLOWCouplingBlock with
    clamp 2, PermuteRandom(seed=k) after every block) and in ConditionalRealNVP: same z, x and log-dets."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("FrEIA")
    from FrEIA.framework import ConditionNode, InputNode, Node, OutputNode, ReversibleGraphNet
    from FrEIA.modules import GLOWCouplingBlock, PermuteRandom

    torch.manual_seed(0)
    cdim, fc, blocks = 5, 16, 3

    def subnet_fc(dims_in, dims_out):
        return torch.nn.Sequential(torch.nn.Linear(dims_in, fc), torch.nn.Dropout(p=0.0), torch.nn.ReLU(),
                                   torch.nn.Linear(fc, fc), torch.nn.Dropout(p=0.0), torch.nn.ReLU(),
                                   torch.nn.Linear(fc, dims_out))

    nodes = [InputNode(dim, name="input")]
    cond = ConditionNode(cdim, name="condition")
    for k in range(blocks):
        nodes.append(Node(nodes[-1], GLOWCouplingBlock, {"subnet_constructor": subnet_fc, "clamp": 2.0},
                          conditions=cond, name=f"coupling_{k}"))
        nodes.append(Node(nodes[-1], PermuteRandom, {"seed": k}, name=f"permute_{k}"))
    nodes.append(OutputNode(nodes[-1], name="output"))
    net = ReversibleGraphNet(nodes + [cond], verbose=False).eval()

    def dense(lin):
        return {"kernel": jnp.asarray(lin.weight.detach().numpy().T), "bias": jnp.asarray(lin.bias.detach().numpy())}

    params = {}
    for k in range(blocks):
        block = nodes[1 + 2 * k].module
        for name, sub in ((f"block{k}_a", block.subnet2), (f"block{k}_b", block.subnet1)):
            params[name] = {f"dense_{i}": dense(sub[idx]) for i, idx in enumerate((0, 3, 6))}
    model = ConditionalRealNVP(dim=dim, num_blocks=blocks, hidden=fc, clamp=2.0, clamp_form="freia", seed=0)
    variables = {"params": params}

    rng = np.random.RandomState(0)
    x = rng.randn(4, dim).astype(np.float32)
    c = rng.randn(4, cdim).astype(np.float32)
    with torch.no_grad():
        z_t, ld_t = net(torch.from_numpy(x), c=[torch.from_numpy(c)])
        x_t, ldr_t = net(torch.from_numpy(x), c=[torch.from_numpy(c)], rev=True)
    z, ld = model.apply(variables, x, c, method=model.inverse)
    xg, ldg = model.apply(variables, x, c, method=model.forward)
    assert float(np.abs(ld_t.numpy()).max()) > 1e-2  # not the identity
    np.testing.assert_allclose(np.asarray(z), z_t.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(ld), ld_t.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(xg), x_t.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(ldg), ldr_t.numpy(), atol=1e-5, rtol=1e-5)
