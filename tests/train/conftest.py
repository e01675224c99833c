"""Shared setup for the engine tests.

- Makes `from configs import common` importable however pytest is started (configs/ is not a package).
- A persistent XLA compilation cache for this directory's tests (in-process and subprocesses): the
  trainer tests compile the same tiny programs many times; the cache makes repeats cheap. The previous
  JAX settings are restored after each module.
"""
import os
import pathlib
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

_CACHE_OPTIONS = {"jax_compilation_cache_dir": None, "jax_persistent_cache_min_compile_time_secs": 0.0,
                  "jax_persistent_cache_min_entry_size_bytes": 0}


def _reset_jax_cache():
    try:  # private; without it a cache JAX already decided not to use stays off (tests only get slower)
        from jax._src import compilation_cache
        compilation_cache.reset_cache()
    except (ImportError, AttributeError):
        pass


@pytest.fixture(scope="session")
def compile_cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("jax_compile_cache"))


@pytest.fixture(scope="module", autouse=True)
def _compile_cache(compile_cache_dir):
    import jax

    previous = {name: getattr(jax.config, name) for name in _CACHE_OPTIONS}
    for name, value in _CACHE_OPTIONS.items():
        jax.config.update(name, compile_cache_dir if value is None else value)
    _reset_jax_cache()
    yield
    for name, value in previous.items():
        jax.config.update(name, value)
    _reset_jax_cache()


@pytest.fixture(scope="session")
def subprocess_env(compile_cache_dir):
    """Environment for engine subprocesses: the repo on PYTHONPATH, the shared compilation cache, and
    unoptimised XLA CPU code generation."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["JAX_COMPILATION_CACHE_DIR"] = compile_cache_dir
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    # Unoptimised CPU code: these programs are tiny, and LLVM optimisation is most of their compile time
    # (3x less CPU time per subprocess). Tests that add a device count append to this.
    env["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
    return env
