"""Conditional normalizing flows over flat vectors (e.g. 6D joint rotations): RealNVP and NICE.

Owns `ConditionalRealNVP` (affine coupling, or additive coupling = NICE with `volume_preserving=True`),
its conditioner `CouplingMLP`, the fixed `Permute` bijector, `soft_clamp`, `standard_normal_log_prob`
and `fixed_permutations`. Used by `hmrjax.methods.prob_hmr` (Wehrbein et al., "Utilizing Uncertainty
in 2D Pose Detectors for Probabilistic 3D Human Mesh Recovery"; code github.com/twehrbein/humr).

Design (distrax + linen)
- The conditioners are ordinary linen submodules (`CouplingMLP`, created in `setup`). Each call of a
  public method builds a distrax bijector whose couplings are `distrax.SplitCoupling`s whose
  `conditioner` is a closure over the bound submodule and the condition vector; the inner bijector is
  `distrax.ScalarAffine(shift=t, log_scale=s)` (RealNVP) or `distrax.ScalarAffine(shift=t)` (NICE),
  lifted to the half-vector by `SplitCoupling` (via `distrax.Block`). Blocks are joined with
  `distrax.Chain`; the fixed permutation between blocks is the custom `Permute` bijector below
  (distrax has none). Linen owns the parameters, distrax owns the change-of-variables bookkeeping.
  `SplitCoupling` (not `MaskedCoupling`) is used so that a conditioner sees exactly the passive half
  concatenated with the condition, as in the authors' FrEIA model.
- Direction: the chain is built in the *normalizing* direction x -> z, block by block, exactly like
  the authors' FrEIA `ReversibleGraphNet` (coupling_k then PermuteRandom(seed=k)); generation
  z -> x is its inverse (`distrax.Inverse`), as in their `self.flow(z, cond, rev=True)`.
- Block layout (`two_sided=True`, the default, = FrEIA `GLOWCouplingBlock` used by the authors):
  x = [x1, x2] with len(x1) = round(dim / 2) (FrEIA); y1 = x1 * exp(s_a(x2, c)) + t_a(x2, c), then
  y2 = x2 * exp(s_b(y1, c)) + t_b(y1, c): two conditioners per block. `two_sided=False` keeps only the
  first coupling (one conditioner per block; the permutation mixes the halves).
- Soft clamping of the log-scale (FrEIA "ATAN"), both bounding |s| < clamp:
  `clamp_form="freia"` (default) s = clamp * 0.636 * atan(s_raw): FrEIA 0.2 `GLOWCouplingBlock`
  (`s2 = self.clamp * self.f_clamp(s2)`, `f_clamp = 0.636 * atan`), the FrEIA that the authors'
  `install_env.txt` installs (unpinned `pip install FrEIA`); `clamp_form="atan"`
  s = clamp * (2/pi) * atan(s_raw / clamp): the older FrEIA (<= 0.1) `log_e`. They differ only in the
  slope at 0 (clamp * 0.636 vs 0.636).
  Submodule `block{k}_a` plays FrEIA's `coupling_k.subnet2`, `block{k}_b` its `subnet1` (for weight import).
- Identity start: the last linear layer of every conditioner is zero-initialised, so s = t = 0 and the
  flow at init is a fixed permutation (x -> z keeps the standard normal density; the mode is x = 0).
  (The authors' FrEIA subnets keep PyTorch's default init; the zero init is an hmrjax choice.)

Shapes: x, z `[..., dim]`; cond `[..., cond_dim]` whose leading dims are a prefix of x's (`cond [B, C]`
with `x [B, S, dim]` is broadcast over S). log-densities and log-determinants are `[...]` (nats).
"""
from __future__ import annotations

import math

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "soft_clamp",
    "fixed_permutations",
    "standard_normal_log_prob",
    "Permute",
    "CouplingMLP",
    "ConditionalRealNVP",
    "num_params",
]

_CLAMP_FORMS = ("atan", "freia")
_PERMUTATIONS = ("fixed_random", "reverse", "none")


def soft_clamp(s_raw, clamp: float, form: str = "freia"):
    """Soft clamping of a coupling log-scale into (-clamp, clamp); `clamp <= 0` disables it.

    form "freia": clamp * 0.636 * atan(s_raw)            (FrEIA 0.2 GLOWCouplingBlock, the authors' code)
    form "atan": clamp * (2/pi) * atan(s_raw / clamp)   (FrEIA <= 0.1; slope 2/pi at 0)
    """
    if form not in _CLAMP_FORMS:
        raise ValueError(f"hmrjax.nn.flows.soft_clamp: form must be one of {_CLAMP_FORMS}, got {form!r}")
    if clamp is None or clamp <= 0:
        return s_raw
    if form == "atan":
        return clamp * (2.0 / math.pi) * jnp.arctan(s_raw / clamp)
    return clamp * 0.636 * jnp.arctan(s_raw)


def fixed_permutations(dim: int, num_blocks: int, kind: str = "fixed_random", seed: int = 0) -> np.ndarray:
    """The permutation applied after each block (normalizing direction), `[num_blocks, dim]` int.

    "fixed_random": block k uses `np.random.RandomState(seed + k).permutation(dim)` (FrEIA's
    `PermuteRandom(seed=k)` draws `np.random.permutation` after `np.random.seed(k)`, so seed=0 gives the
    authors' permutations). "reverse": x[::-1]. "none": identity (only for tests/ablations).
    """
    if kind not in _PERMUTATIONS:
        raise ValueError(f"hmrjax.nn.flows: permutation must be one of {_PERMUTATIONS}, got {kind!r}")
    if kind == "fixed_random":
        perms = [np.random.RandomState(seed + k).permutation(dim) for k in range(num_blocks)]
    elif kind == "reverse":
        perms = [np.arange(dim)[::-1] for _ in range(num_blocks)]
    else:
        perms = [np.arange(dim) for _ in range(num_blocks)]
    return np.stack(perms).astype(np.int32).reshape(num_blocks, dim)


def standard_normal_log_prob(z):
    """log N(z; 0, I) summed over the last axis: -0.5 * (|z|^2 + D log(2 pi)). z `[..., D]` -> `[...]`."""
    d = z.shape[-1]
    return -0.5 * (jnp.sum(jnp.square(z), axis=-1) + d * math.log(2.0 * math.pi))


class Permute(distrax.Bijector):
    """y = x[..., perm]: a volume-preserving permutation of the last axis (log|det| = 0)."""

    def __init__(self, perm):
        perm = np.asarray(perm)
        if perm.ndim != 1 or not np.array_equal(np.sort(perm), np.arange(perm.size)):
            raise ValueError(f"hmrjax.nn.flows.Permute: perm must be a permutation of 0..D-1, got {perm}")
        self._perm = perm
        self._inv = np.argsort(perm)
        super().__init__(event_ndims_in=1, is_constant_jacobian=True)

    def forward_and_log_det(self, x):
        return x[..., self._perm], jnp.zeros(x.shape[:-1], x.dtype)

    def inverse_and_log_det(self, y):
        return y[..., self._inv], jnp.zeros(y.shape[:-1], y.dtype)


class CouplingMLP(nn.Module):
    """Conditioner: `num_layers` linear layers, `hidden` units, ReLU between them; last layer zero-init.

    Input `[..., d_passive + cond_dim]` -> `[..., out_dim]` (RealNVP: [s_raw, t] of the active half,
    in FrEIA's order; NICE: t).
    """

    out_dim: int
    hidden: int = 1024
    num_layers: int = 3
    zero_init_last: bool = True

    @nn.compact
    def __call__(self, h):
        if self.num_layers < 1:
            raise ValueError(f"hmrjax.nn.flows.CouplingMLP: num_layers must be >= 1, got {self.num_layers}")
        for i in range(self.num_layers - 1):
            h = nn.relu(nn.Dense(self.hidden, name=f"dense_{i}")(h))
        last_init = nn.initializers.zeros if self.zero_init_last else nn.initializers.lecun_normal()
        return nn.Dense(self.out_dim, kernel_init=last_init, bias_init=nn.initializers.zeros,
                        name=f"dense_{self.num_layers - 1}")(h)


class ConditionalRealNVP(nn.Module):
    """Conditional RealNVP (affine coupling) or NICE (`volume_preserving=True`, additive coupling).

    Attributes:
      dim: event size (e.g. 24 joints x 6 = 144; SMPL-X body 22 x 6 = 132).
      num_blocks: coupling blocks (paper: 8).
      hidden, num_layers: conditioner MLP width / number of linear layers (paper: 1024, 3).
      clamp, clamp_form: soft clamp of the log-scale (code: 2.0, FrEIA 0.2 atan form); see `soft_clamp`.
      volume_preserving: NICE: y = x + t(passive, c), log|det| = 0.
      two_sided: FrEIA GLOWCouplingBlock (both halves per block, authors' code) vs one coupling per block.
      permutation, seed: fixed permutation after every block ("fixed_random" seeded, "reverse", "none").

    Methods (call with `module.apply(variables, ..., method=...)`):
      `__call__(x, cond)` = `log_prob` (used by `init`); `inverse(x, cond) -> (z, log|det dz/dx|)`;
      `forward(z, cond) -> (x, log|det dx/dz|)`; `log_prob(x, cond)`; `sample(rng, cond, n)`;
      `mode(cond)`; `distribution(cond)` (a `distrax.Transformed` with a standard normal base).
    """

    dim: int
    num_blocks: int = 8
    hidden: int = 1024
    num_layers: int = 3
    clamp: float = 2.0
    clamp_form: str = "freia"
    volume_preserving: bool = False
    two_sided: bool = True
    permutation: str = "fixed_random"
    seed: int = 0

    def setup(self):
        if self.dim < 2:
            raise ValueError(f"hmrjax.nn.flows.ConditionalRealNVP: dim must be >= 2, got {self.dim}")
        if self.num_blocks < 1:
            raise ValueError(f"hmrjax.nn.flows.ConditionalRealNVP: num_blocks must be >= 1, got {self.num_blocks}")
        if self.clamp_form not in _CLAMP_FORMS:
            raise ValueError(f"hmrjax.nn.flows.ConditionalRealNVP: clamp_form must be one of {_CLAMP_FORMS}, "
                             f"got {self.clamp_form!r}")
        self._perms = fixed_permutations(self.dim, self.num_blocks, self.permutation, self.seed)
        self._len1 = round(self.dim * 0.5)  # FrEIA's split (Python rounding; = dim / 2 for even dims)
        self._len2 = self.dim - self._len1
        mult = 1 if self.volume_preserving else 2
        conds = []
        for k in range(self.num_blocks):
            # "a" transforms x1 from (x2, c); "b" transforms x2 from (y1, c).
            conds.append(CouplingMLP(mult * self._len1, self.hidden, self.num_layers, name=f"block{k}_a"))
            if self.two_sided:
                conds.append(CouplingMLP(mult * self._len2, self.hidden, self.num_layers, name=f"block{k}_b"))
        self.conditioners = conds

    # ------------------------------------------------------------------ bijector construction
    def _inner(self, params):
        if self.volume_preserving:
            return distrax.ScalarAffine(shift=params)
        n = params.shape[-1] // 2
        log_scale = soft_clamp(params[..., :n], self.clamp, self.clamp_form)
        return distrax.ScalarAffine(shift=params[..., n:], log_scale=log_scale)

    def _coupling(self, net, cond, swap: bool):
        def conditioner(passive):
            c = jnp.broadcast_to(cond, passive.shape[:-1] + cond.shape[-1:])
            return net(jnp.concatenate([passive, c.astype(passive.dtype)], axis=-1))

        # swap=True: x[:len1] is transformed from x[len1:]; swap=False: the reverse.
        return distrax.SplitCoupling(split_index=self._len1, event_ndims=1, conditioner=conditioner,
                                     bijector=self._inner, swap=swap)

    def normalizing_bijector(self, cond) -> distrax.Bijector:
        """The distrax bijector x -> z for condition `cond [..., C]` (already broadcast-ready)."""
        layers = []  # in application order x -> z
        i = 0
        for k in range(self.num_blocks):
            layers.append(self._coupling(self.conditioners[i], cond, swap=True))
            i += 1
            if self.two_sided:
                layers.append(self._coupling(self.conditioners[i], cond, swap=False))
                i += 1
            layers.append(Permute(self._perms[k]))
        return distrax.Chain(layers[::-1])  # distrax.Chain applies its last element first

    def _prepare(self, v, cond, name: str):
        v = jnp.asarray(v)
        cond = jnp.asarray(cond)
        if v.shape[-1] != self.dim:
            raise ValueError(f"hmrjax.nn.flows.ConditionalRealNVP: `{name}` must have shape [..., {self.dim}], "
                             f"got {v.shape}")
        lead_c, lead_v = cond.shape[:-1], v.shape[:-1]
        if cond.ndim < 1 or len(lead_c) > len(lead_v) or any(
                a != b and a != 1 for a, b in zip(lead_c, lead_v[: len(lead_c)])):
            raise ValueError(f"hmrjax.nn.flows.ConditionalRealNVP: `cond` {cond.shape} must be [..., C] with "
                             f"leading dims a prefix of `{name}`'s {v.shape}")
        cond = cond.reshape(lead_c + (1,) * (len(lead_v) - len(lead_c)) + cond.shape[-1:])
        return v, cond

    # ------------------------------------------------------------------ public API
    def inverse(self, x, cond):
        """Normalizing direction: x `[..., dim]` -> (z `[..., dim]`, log|det dz/dx| `[...]`)."""
        x, cond = self._prepare(x, cond, "x")
        return self.normalizing_bijector(cond).forward_and_log_det(x)

    def forward(self, z, cond):
        """Generative direction: z `[..., dim]` -> (x `[..., dim]`, log|det dx/dz| `[...]`)."""
        z, cond = self._prepare(z, cond, "z")
        return self.normalizing_bijector(cond).inverse_and_log_det(z)

    def log_prob(self, x, cond):
        """log p(x | cond) = log N(z; 0, I) + log|det dz/dx|, `[...]` nats."""
        z, log_det = self.inverse(x, cond)
        return standard_normal_log_prob(z) + log_det

    def __call__(self, x, cond):
        return self.log_prob(x, cond)

    def distribution(self, cond) -> distrax.Transformed:
        """`distrax.Transformed(N(0, I_dim), Inverse(normalizing))` for `cond` (leading dims = batch)."""
        cond = jnp.asarray(cond)
        shape = cond.shape[:-1] + (self.dim,)  # batch shape = the condition's leading dims
        base = distrax.MultivariateNormalDiag(jnp.zeros(shape, cond.dtype), jnp.ones(shape, cond.dtype))
        return distrax.Transformed(base, distrax.Inverse(self.normalizing_bijector(cond)))

    def sample(self, rng, cond, num_samples: int, include_mode: bool = False):
        """Draws x = f(z), z ~ N(0, I) per condition.

        Args:
          rng: PRNG key. cond: `[..., C]`. num_samples: S.
          include_mode: if True, sample 0 uses z = 0 (the approximate mode, as in the authors' code).
        Returns:
          (x `[..., S, dim]`, log_prob `[..., S]`).
        """
        cond = jnp.asarray(cond)
        z = jax.random.normal(rng, cond.shape[:-1] + (num_samples, self.dim), cond.dtype)
        if include_mode:
            z = z.at[..., 0, :].set(0.0)
        x, log_det = self.forward(z, cond[..., None, :])
        return x, standard_normal_log_prob(z) - log_det

    def mode(self, cond):
        """The sample at z = 0: (x `[..., dim]`, log_prob `[...]`)."""
        cond = jnp.asarray(cond)
        z = jnp.zeros(cond.shape[:-1] + (self.dim,), cond.dtype)
        x, log_det = self.forward(z, cond)
        return x, standard_normal_log_prob(z) - log_det


def num_params(variables) -> int:
    """Total parameter count of a variables/params pytree."""
    return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(variables)))

