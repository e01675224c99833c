"""Training engine: one trainer for every Method (see ARCHITECTURE.md, "Method contract").

Modules (imported on use, so `import hmrjax.train` stays cheap):
  mesh         device mesh, regex partition rules -> NamedShardings, global batches
  optim        optax optimizer and schedule from config (masks, frozen sub-trees, clipping)
  checkpoint   orbax CheckpointManager wrapper (train state + grain iterator state)
  distributed  multi-host start (`jax.distributed.initialize`), a no-op on one host
  logging      metrics.jsonl, TensorBoard event files (no TensorFlow), console progress
  config_flags `--config file.py:arg --config.a.b=v` parsing
  trainer      TrainState, the train step, `train_and_evaluate(config, workdir)`
"""
