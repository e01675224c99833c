"""Probe: can a backbone learn the global orientation from the synthetic crops in a CPU budget?

A backbone (default hrnet_tiny) -> pooled features -> Dense(128) -> (6D root rotation, 8 yaw bins), trained
with Adam on the same grain pipeline as `configs/dpose.py:tiny` (augmentation included), loss = rotation-matrix
MSE of the root + 0.1 x yaw-bin cross-entropy. Yaw = the facing direction (body z axis) in the camera x-z plane,
8 bins of 45 deg (chance accuracy 0.125). Prints the validation root-orientation error and yaw-bin accuracy
five times during training. A diagnostic for the D-PoSE / prob_hmr learning runs (README, D-PoSE section).

    python tools/orientation_probe.py --steps 3000 --size 64 --data-dir /work/data [--backbone hrnet_tiny]
"""
import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--backbone", default="hrnet_tiny")
    p.add_argument("--data", default="synthetic_humans/small")
    p.add_argument("--data-dir", default="")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--no-augment", action="store_true")
    a = p.parse_args(argv)

    import data_pipelines
    from configs import dpose
    from hmrjax.geometry import rotations
    from hmrjax.nn import backbones

    cfg = dpose.get_config("tiny")
    cfg.data.name, cfg.data.data_dir, cfg.data.image_size = a.data, a.data_dir, a.size
    if a.no_augment:
        cfg.data.augment.enabled = cfg.data.geometry.enabled = False
    train = iter(data_pipelines.build_train_dataset(cfg, 0, 1))
    val = [b for _, b in zip(range(8), data_pipelines.build_eval_dataset(cfg, "validation", 0, 1))]

    def yaw_bin(root):
        f = root[:, :, 2]
        ang = jnp.arctan2(f[:, 0], -f[:, 2])
        return jnp.floor((ang + np.pi) / (2 * np.pi) * 8).astype(jnp.int32) % 8

    class Probe(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            enc = backbones.HRNet(**backbones.HRNET_CONFIGS[a.backbone], name="backbone")(x, train)
            f = jnp.concatenate([jnp.mean(enc["concat"], (1, 2)), jnp.mean(enc["branches"][-1], (1, 2))], -1)
            h = nn.relu(nn.Dense(128)(f))
            return nn.Dense(6)(h) + jnp.asarray([1.0, 0, 0, 0, -1, 0]), nn.Dense(8)(h)

    net = Probe()
    v = net.init(jax.random.PRNGKey(0), jnp.asarray(next(train)["img"]), False)
    params, stats = v["params"], v["batch_stats"]
    tx = optax.adam(a.lr)
    opt = tx.init(params)

    def loss_fn(p_, s_, img, pose):
        (r6, logits), upd = net.apply({"params": p_, "batch_stats": s_}, img, True, mutable=["batch_stats"])
        gt = rotations.axis_angle_to_matrix(pose[:, 0])
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, yaw_bin(gt)).mean()
        return jnp.mean((rotations.rot6d_to_matrix(r6) - gt) ** 2) + 0.1 * ce, upd["batch_stats"]

    @jax.jit
    def step(p_, s_, o_, img, pose):
        (loss, s_), g = jax.value_and_grad(loss_fn, has_aux=True)(p_, s_, img, pose)
        u, o_ = tx.update(g, o_, p_)
        return optax.apply_updates(p_, u), s_, o_, loss

    @jax.jit
    def evaluate(p_, s_, img, pose):
        r6, logits = net.apply({"params": p_, "batch_stats": s_}, img, False)
        gt = rotations.axis_angle_to_matrix(pose[:, 0])
        rel = jnp.einsum("bij,bkj->bik", rotations.rot6d_to_matrix(r6), gt)
        ang = jnp.degrees(jnp.arccos(jnp.clip((jnp.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))
        return ang, jnp.argmax(logits, -1) == yaw_bin(gt)

    t0 = time.time()
    for i in range(1, a.steps + 1):
        b = next(train)
        params, stats, opt, loss = step(params, stats, opt, jnp.asarray(b["img"]), jnp.asarray(b["pose"]))
        if i % max(a.steps // 5, 1) == 0:
            angs, accs = zip(*[evaluate(params, stats, jnp.asarray(x["img"]), jnp.asarray(x["pose"])) for x in val])
            print(f"step {i:6d} {time.time() - t0:6.0f} s  loss {float(loss):.3f}  val root-orientation error "
                  f"{float(jnp.concatenate(angs).mean()):5.1f} deg  yaw-bin accuracy "
                  f"{float(jnp.concatenate(accs).mean()):.2f} (chance 0.125)", flush=True)


if __name__ == "__main__":
    main()
