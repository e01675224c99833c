"""Multi-host start: `initialize()` wraps `jax.distributed.initialize`, a no-op on one host.

Settings come from the arguments, else the environment: HMRJAX_COORDINATOR (host:port),
HMRJAX_NUM_PROCESSES, HMRJAX_PROCESS_ID; else JAX's own auto-detection (SLURM, Cloud TPU, ...) when
`JAX_COORDINATOR_ADDRESS` or a cluster environment is present. Call it before any other JAX call.
Each process then reads its own data shard: `shard_index=jax.process_index(),
shard_count=jax.process_count()`.
"""
from __future__ import annotations

import os

import jax

_INITIALIZED = False


def is_initialized() -> bool:
    """Whether this process has joined a multi-process JAX runtime."""
    if _INITIALIZED:
        return True
    try:  # private but stable across recent JAX versions; a miss only means "not initialised".
        from jax._src import distributed as _dist
        return _dist.global_state.client is not None
    except (ImportError, AttributeError):
        return False


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, **kwargs) -> bool:
    """Joins the multi-process runtime; returns True if it did, False if it was a no-op.

    No-op when already initialised, or when no coordinator is given and the environment names none
    (a single-process run). With a coordinator, `num_processes` and `process_id` are required
    (argument or environment).
    """
    global _INITIALIZED
    if is_initialized():
        return False
    env = os.environ
    coordinator_address = coordinator_address or env.get("HMRJAX_COORDINATOR")
    if num_processes is None and env.get("HMRJAX_NUM_PROCESSES"):
        num_processes = int(env["HMRJAX_NUM_PROCESSES"])
    if process_id is None and env.get("HMRJAX_PROCESS_ID"):
        process_id = int(env["HMRJAX_PROCESS_ID"])
    if coordinator_address is None:
        if num_processes not in (None, 1):
            raise ValueError(f"num_processes={num_processes} needs a coordinator address "
                             "(argument or HMRJAX_COORDINATOR)")
        if not env.get("JAX_COORDINATOR_ADDRESS"):
            return False  # one host, nothing to join
        jax.distributed.initialize(**kwargs)  # JAX reads its own environment
    else:
        if num_processes is None or process_id is None:
            raise ValueError(f"coordinator {coordinator_address!r} given but num_processes="
                             f"{num_processes}, process_id={process_id}; set both (or "
                             "HMRJAX_NUM_PROCESSES / HMRJAX_PROCESS_ID)")
        if num_processes == 1:
            return False
        jax.distributed.initialize(coordinator_address=coordinator_address,
                                   num_processes=num_processes, process_id=process_id, **kwargs)
    _INITIALIZED = True
    return True
