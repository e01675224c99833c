"""Tests for hmrjax.geometry.procrustes against a float64 numpy Umeyama implementation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hmrjax.geometry.procrustes import similarity_procrustes

procrustes = jax.jit(similarity_procrustes, static_argnames="with_scale")


def umeyama_np(src, dst, w=None, with_scale=True):
    """Weighted Umeyama in float64 numpy for one [N, 3] pair (SPIN's PA-MPJPE recipe + weights)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    w = np.ones(len(src)) if w is None else np.asarray(w, np.float64)
    w = w / w.sum()
    mu1, mu2 = w @ src, w @ dst
    X1, X2 = (src - mu1).T, (dst - mu2).T  # [3, N]
    var1 = np.sum(w * np.sum(X1 ** 2, axis=0))
    K = (X1 * w) @ X2.T  # sum_i w_i x_i y_i^T
    U, s, Vh = np.linalg.svd(K)
    V = Vh.T
    Z = np.eye(3)
    Z[-1, -1] *= np.sign(np.linalg.det(U @ V.T))
    R = V @ Z @ U.T
    scale = np.trace(R @ K) / var1 if with_scale else 1.0
    t = mu2 - scale * R @ mu1
    return scale * src @ R.T + t, scale, R, t


def random_similarity(seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 2.0), Rotation.random(random_state=seed).as_matrix(), rng.normal(size=3)


def test_exact_recovery_of_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(17, 3))
    s, R, t = random_similarity(1)
    dst = s * src @ R.T + t
    with jax.enable_x64(True):
        aligned, (s_hat, R_hat, t_hat) = procrustes(jnp.asarray(src), jnp.asarray(dst))
    np.testing.assert_allclose(float(s_hat), s, atol=1e-10)
    np.testing.assert_allclose(np.asarray(R_hat), R, atol=1e-10)
    np.testing.assert_allclose(np.asarray(t_hat), t, atol=1e-10)
    np.testing.assert_allclose(np.asarray(aligned), dst, atol=1e-10)
    # float32
    aligned32, (s32, R32, t32) = procrustes(jnp.asarray(src, jnp.float32), jnp.asarray(dst, jnp.float32))
    assert aligned32.dtype == jnp.float32
    np.testing.assert_allclose(float(s32), s, atol=1e-5)
    np.testing.assert_allclose(np.asarray(R32), R, atol=1e-5)
    np.testing.assert_allclose(np.asarray(aligned32), dst, atol=1e-4)


@pytest.mark.parametrize("with_scale", [True, False])
def test_matches_numpy_umeyama_batched_weighted_and_reflection(with_scale):
    rng = np.random.default_rng(2)
    src = rng.normal(size=(2, 3, 14, 3))
    dst = rng.normal(size=(2, 3, 14, 3))  # unrelated points: many fits need the reflection fix
    dst[0, 0] = src[0, 0] * np.array([-1.0, 1.0, 1.0]) + 0.01 * rng.normal(size=(14, 3))  # a mirror image
    w = rng.uniform(0.0, 2.0, size=(2, 3, 14))
    with jax.enable_x64(True):
        a_w, (s_w, R_w, t_w) = procrustes(jnp.asarray(src), jnp.asarray(dst), jnp.asarray(w), with_scale=with_scale)
        a_u, (s_u, R_u, t_u) = procrustes(jnp.asarray(src), jnp.asarray(dst), with_scale=with_scale)
    n_reflections = 0
    for i in np.ndindex(2, 3):
        for weights, (a, s, R, t) in ((w[i], (a_w, s_w, R_w, t_w)), (None, (a_u, s_u, R_u, t_u))):
            ref_a, ref_s, ref_R, ref_t = umeyama_np(src[i], dst[i], weights, with_scale)
            np.testing.assert_allclose(np.asarray(a[i]), ref_a, atol=1e-10)
            np.testing.assert_allclose(float(s[i]), ref_s, atol=1e-10)
            np.testing.assert_allclose(np.asarray(R[i]), ref_R, atol=1e-10)
            np.testing.assert_allclose(np.asarray(t[i]), ref_t, atol=1e-10)
        U, _, Vh = np.linalg.svd(((src[i] - src[i].mean(0)).T) @ (dst[i] - dst[i].mean(0)))
        n_reflections += np.linalg.det(U @ Vh) < 0
    assert n_reflections > 0  # the reflection branch was exercised
    np.testing.assert_allclose(np.linalg.det(np.asarray(R_w)), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(np.asarray(R_u)), 1.0, atol=1e-12)


def test_zero_weights_equal_dropping_points_and_weight_scale_is_irrelevant():
    rng = np.random.default_rng(3)
    src, dst = rng.normal(size=(12, 3)), rng.normal(size=(12, 3))
    keep = np.array([1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1], bool)
    with jax.enable_x64(True):
        _, (s_w, R_w, t_w) = procrustes(jnp.asarray(src), jnp.asarray(dst), jnp.asarray(keep.astype(float)))
        _, (s_d, R_d, t_d) = procrustes(jnp.asarray(src[keep]), jnp.asarray(dst[keep]))
        _, (s_3, R_3, t_3) = procrustes(jnp.asarray(src), jnp.asarray(dst), jnp.asarray(3.0 * keep))
        # garbage (huge) coordinates at zero-weight points change nothing
        src_bad = np.where(keep[:, None], src, 1e6)
        _, (s_b, R_b, t_b) = procrustes(jnp.asarray(src_bad), jnp.asarray(dst), jnp.asarray(keep.astype(float)))
    for a, b in ((s_w, s_d), (R_w, R_d), (t_w, t_d), (s_3, s_d), (R_3, R_d), (t_3, t_d)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-10)
    for a, b in ((s_b, s_d), (R_b, R_d), (t_b, t_d)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-8)


def _loss(src, dst, w):
    aligned, _ = similarity_procrustes(src, dst, w)
    return jnp.sum((aligned - dst) ** 2)


_grad_loss = jax.jit(jax.grad(_loss, argnums=(0, 1)))
_loss_jit = jax.jit(_loss)


def test_degenerate_inputs_fall_back_without_nans():
    rng = np.random.default_rng(4)
    src = jnp.asarray(rng.normal(size=(2, 6, 3)), jnp.float32)
    dst = jnp.asarray(rng.normal(size=(2, 6, 3)), jnp.float32)
    w = jnp.asarray([[0.0] * 6, [0, 1.0, 0, 0, 0, 0]])  # all zero; a single point (zero variance)
    aligned, (s, R, t) = procrustes(src, dst, w)
    for x in (aligned, s, R, t):
        assert np.isfinite(np.asarray(x)).all()
    np.testing.assert_allclose(np.asarray(s), [1.0, 1.0])
    np.testing.assert_allclose(np.asarray(R), np.broadcast_to(np.eye(3), (2, 3, 3)))
    np.testing.assert_allclose(np.asarray(aligned[0]), np.asarray(src[0]))  # all-zero weights: identity
    np.testing.assert_allclose(np.asarray(t[1]), np.asarray(dst[1, 1] - src[1, 1]), atol=1e-6)  # translation only
    gs, gd = _grad_loss(src, dst, w)
    assert np.isfinite(np.asarray(gs)).all() and np.isfinite(np.asarray(gd)).all()


def test_gradient_is_finite_and_matches_finite_differences():
    rng = np.random.default_rng(5)
    src, dst = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    w = rng.uniform(0.2, 1.0, size=8)
    with jax.enable_x64(True):
        gs, gd = (np.asarray(g) for g in _grad_loss(jnp.asarray(src), jnp.asarray(dst), jnp.asarray(w)))
        h = 1e-6
        for idx in [(0, 0), (3, 2), (7, 1)]:
            e = np.zeros_like(src)
            e[idx] = h
            fd_s = (float(_loss_jit(jnp.asarray(src + e), jnp.asarray(dst), jnp.asarray(w)))
                    - float(_loss_jit(jnp.asarray(src - e), jnp.asarray(dst), jnp.asarray(w)))) / (2 * h)
            fd_d = (float(_loss_jit(jnp.asarray(src), jnp.asarray(dst + e), jnp.asarray(w)))
                    - float(_loss_jit(jnp.asarray(src), jnp.asarray(dst - e), jnp.asarray(w)))) / (2 * h)
            np.testing.assert_allclose(gs[idx], fd_s, atol=1e-6)
            np.testing.assert_allclose(gd[idx], fd_d, atol=1e-6)
    gs32, gd32 = _grad_loss(jnp.asarray(src, jnp.float32), jnp.asarray(dst, jnp.float32), jnp.asarray(w, jnp.float32))
    assert np.isfinite(np.asarray(gs32)).all() and np.isfinite(np.asarray(gd32)).all()


def test_vmap_matches_batched_call():
    rng = np.random.default_rng(6)
    src = jnp.asarray(rng.normal(size=(4, 10, 3)), jnp.float32)
    dst = jnp.asarray(rng.normal(size=(4, 10, 3)), jnp.float32)
    a_batched, _ = procrustes(src, dst)
    a_vmap = jax.jit(jax.vmap(lambda a, b: similarity_procrustes(a, b)[0]))(src, dst)
    np.testing.assert_allclose(np.asarray(a_vmap), np.asarray(a_batched), atol=1e-5)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"`src` must have shape \[\.\.\., N, 3\]"):
        similarity_procrustes(jnp.zeros((5, 2)), jnp.zeros((5, 2)))
    with pytest.raises(ValueError, match="`dst` must have the shape"):
        similarity_procrustes(jnp.zeros((5, 3)), jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="`weights` must broadcast"):
        similarity_procrustes(jnp.zeros((5, 3)), jnp.zeros((5, 3)), jnp.ones(4))


@pytest.mark.parametrize("with_scale", [False, True])
def test_quaternion_solver_matches_svd_and_numpy(with_scale):
    """Horn's quaternion solver (no LAPACK) gives the float64 numpy Umeyama fit: random rotations (incl. near
    180 deg), a reflected target (proper rotation still), weights, and a degenerate (coincident) set."""
    rng = np.random.default_rng(7)
    b, n = 64, 9
    src = rng.normal(size=(b, n, 3))
    rots = Rotation.random(b, random_state=1).as_matrix()
    rots[:4] = Rotation.from_rotvec(rng.normal(size=(4, 3)) * 0 + [[0, 0, np.pi - 1e-4]] * 4).as_matrix()
    dst = 1.3 * np.einsum("bij,bnj->bni", rots, src) + rng.normal(size=(b, 1, 3)) + 0.05 * rng.normal(size=src.shape)
    dst[4] = src[4] * [-1, 1, 1]                                   # a mirror image: best proper rotation
    src[5] = 0.5                                                    # degenerate: all points coincide
    w = rng.uniform(0.2, 1.0, size=(b, n))

    def umeyama(x, y, p):                                           # float64 reference (module docstring)
        p = p / p.sum()
        mx, my = p @ x, p @ y
        xc, yc = x - mx, y - my
        var = p @ (xc ** 2).sum(1)
        if var <= 1e-12:
            return x - mx + my
        u, sv, vt = np.linalg.svd((yc * p[:, None]).T @ xc)
        d = np.diag([1, 1, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
        r = u @ d @ vt
        s = np.trace(np.diag(sv) @ d) / var if with_scale else 1.0
        return s * x @ r.T + (my - s * r @ mx)

    ref = np.stack([umeyama(src[i], dst[i], w[i]) for i in range(b)])
    with jax.enable_x64(True):
        quat, (_, rq, _) = similarity_procrustes(src, dst, w, with_scale=with_scale, solver="quaternion")
        svd, _ = similarity_procrustes(src, dst, w, with_scale=with_scale)
    np.testing.assert_allclose(np.asarray(quat), ref, atol=1e-7)
    np.testing.assert_allclose(np.asarray(quat), np.asarray(svd), atol=1e-7)
    np.testing.assert_allclose(np.einsum("bji,bjk->bik", rq, rq), np.broadcast_to(np.eye(3), (b, 3, 3)), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(np.asarray(rq)), 1.0, atol=1e-9)
    # float32 (the evaluator's dtype) stays close to the float64 reference
    q32, _ = similarity_procrustes(src.astype(np.float32), dst.astype(np.float32), w.astype(np.float32),
                                              with_scale=with_scale, solver="quaternion")
    np.testing.assert_allclose(np.asarray(q32), ref, atol=2e-4)
    with pytest.raises(ValueError, match="solver"):
        similarity_procrustes(src, dst, solver="qr")
