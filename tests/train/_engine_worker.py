"""Subprocess entry point for the engine's multi-device tests (the device count is fixed at jax import).

  python _engine_worker.py compare OUT.json     8 fake CPU devices: one step on 8 devices vs 1 device
  python _engine_worker.py train WORKDIR STEPS [COORD NPROC PID]
                                                train the toy config; with COORD, join a gloo job
  python _engine_worker.py reference OUT.json WORKDIR STEPS   compare, then train (one jax start)
  python _engine_worker.py killable WORKDIR STEPS KILL_AT MARKER
                                                train; the first run (no MARKER file yet) SIGKILLs
                                                itself right after step KILL_AT
"""
import json
import os
import sys

import numpy as np


def toy_config(steps: int, batch_size: int = 16):
    from hmrjax.train.config_flags import load_config

    here = os.path.dirname(os.path.abspath(__file__))
    config = load_config(os.path.join(here, "..", "..", "configs", "toy.py") + ":tiny")
    config.batch_size = batch_size
    config.total_steps = steps
    config.log_every = 1
    config.checkpoint.every_steps = 5
    config.checkpoint.keep = 2
    return config


def compare(out_path):
    import jax

    from hmrjax import methods
    from hmrjax.methods.toy import toy_dataset
    from hmrjax.train import mesh as mesh_lib, optim, trainer

    assert jax.device_count() == 8, jax.devices()
    config = toy_config(1)
    config.optim.name = "sgd"
    config.optim.momentum = 0.0
    config.optim.lr = 0.1
    method = methods.create(config)
    tx = optim.make_optimizer(config.optim, config.total_steps)
    local = toy_dataset(config)[0]

    def one_step(devices, mesh_cfg, rules=()):
        config.mesh.data, config.mesh.fsdp = mesh_cfg
        mesh = mesh_lib.make_mesh(config.mesh, devices)
        batch = mesh_lib.global_batch(mesh, local)
        init_fn = trainer.make_init_fn(method, tx, config)
        rng = jax.random.PRNGKey(0)
        shardings = trainer.state_shardings(mesh, rules, jax.eval_shape(init_fn, rng, batch))
        state = jax.jit(init_fn, out_shardings=shardings)(rng, batch)
        step = jax.jit(trainer.make_train_step(method, tx, config), out_shardings=(shardings, None))
        new_state, metrics = step(state, batch)
        specs = {mesh_lib.path_str(kp): str(leaf.sharding.spec)
                 for kp, leaf in jax.tree_util.tree_leaves_with_path(new_state.params)}
        return jax.device_get(new_state), jax.device_get(metrics), specs

    ref, ref_metrics, _ = one_step(jax.devices()[:1], (1, 1))
    result = {"ref_loss": float(ref_metrics["loss"])}
    rules = [(r"backbone/Conv_\d/kernel$", (None, None, None, "fsdp"))]
    for name, devices, mesh_cfg, r in [("data8", jax.devices(), (-1, 1), ()),
                                       ("data4_fsdp2", jax.devices(), (4, 2), rules)]:
        state, metrics, specs = one_step(devices, mesh_cfg, r)
        rel = {}
        for field in ("params", "state"):
            for (kp, a), (_, b) in zip(jax.tree_util.tree_leaves_with_path(getattr(state, field)),
                                       jax.tree_util.tree_leaves_with_path(getattr(ref, field))):
                a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
                rel[f"{field}/{mesh_lib.path_str(kp)}"] = float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))
        # BatchNorm running stats must have moved (a real check of global statistics, not a no-op).
        moved = float(np.max(np.abs(np.asarray(ref.state["batch_stats"]["backbone"]["BatchNorm_0"]["mean"]))))
        result[name] = {"rel": rel, "loss": float(metrics["loss"]), "specs": specs, "bn_mean_absmax": moved}
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)


def train(workdir, steps, coord=None, nproc=None, pid=None):
    import jax

    if coord is not None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        from hmrjax.train import distributed
        assert distributed.initialize(coord, int(nproc), int(pid))
        assert distributed.initialize() is False  # second call is a no-op
    from hmrjax.train import trainer

    assert jax.device_count() == 8, jax.devices()
    trainer.train_and_evaluate(toy_config(int(steps)), workdir)


def killable(workdir, steps, kill_at, marker):
    import signal

    import jax

    from hmrjax.train import trainer

    config = toy_config(int(steps), batch_size=8)
    config.eval_every = 1
    first_run = not os.path.exists(marker)
    open(marker, "a").close()

    def evaluate(state):
        if first_run and int(jax.device_get(state.step)) == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9: no handler runs, no cleanup
        return {}

    trainer.train_and_evaluate(config, workdir, evaluate_fn=evaluate)


def reference(out_path, workdir, steps):
    compare(out_path)
    train(workdir, steps)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    {"compare": compare, "train": train, "killable": killable, "reference": reference}[mode](*args)
