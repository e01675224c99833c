"""Orbax `CheckpointManager` wrapper: the train state and the grain iterator state, saved together.

Layout: `<workdir>/checkpoints/<step>/{state, data}`; `state` is the TrainState pytree (params,
optimizer state, step, rng, non-param collections, EMA), `data` holds one JSON file per process with
its grain iterator state (grain's own orbax handler). Saves are asynchronous when configured: the
arrays are copied off the device before `save` returns and written in the background; a checkpoint
only becomes visible when complete, so a process killed mid-save leaves the previous one intact.
"""
from __future__ import annotations

import os

import grain
import jax
import orbax.checkpoint as ocp


class _FrozenIteratorState:
    """The iterator's state at save time (grain's handler calls `get_state()` when it writes)."""

    def __init__(self, iterator):
        import json
        self._state = json.dumps(iterator.get_state(), indent=4).encode()

    def get_state(self) -> bytes:
        return self._state


class Checkpointer:
    """Save every `every_steps` steps, keep the newest `keep`, restore the newest."""

    def __init__(self, directory: str | os.PathLike, every_steps: int, keep: int, async_save: bool = True):
        self.directory = os.path.abspath(os.fspath(directory))
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=max(int(every_steps), 1), max_to_keep=int(keep) if keep else None,
            enable_async_checkpointing=bool(async_save), create=True, cleanup_tmp_directories=True)
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "data"),
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "data": grain.checkpoint.CheckpointHandler()})

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, data_iterator, force: bool = False) -> bool:
        """Saves if `step` is a save step (or `force`); returns whether a save started."""
        args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                                  data=grain.checkpoint.CheckpointSave(_FrozenIteratorState(data_iterator)))
        return self.manager.save(int(step), args=args, force=force)

    def restore(self, step: int, abstract_state, data_iterator):
        """Restores the state onto `abstract_state`'s shardings and sets `data_iterator`'s position."""
        restored = self.manager.restore(int(step), args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data=grain.checkpoint.CheckpointRestore(data_iterator)))
        return restored.state

    def wait(self) -> None:
        """Blocks until pending async saves are on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def abstract_with_shardings(abstract_tree, shardings):
    """ShapeDtypeStructs carrying the target shardings (what `restore` places arrays onto)."""
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_tree, shardings)
