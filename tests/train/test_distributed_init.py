"""`hmrjax.train.distributed.initialize` argument/environment handling on one host (the real
two-process join is exercised in test_distributed.py)."""
import pytest

from hmrjax.train import distributed


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("HMRJAX_COORDINATOR", "HMRJAX_NUM_PROCESSES", "HMRJAX_PROCESS_ID", "JAX_COORDINATOR_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_single_host_is_a_noop(clean_env):
    assert distributed.initialize() is False
    assert distributed.initialize(num_processes=1) is False
    assert distributed.initialize("127.0.0.1:1234", num_processes=1, process_id=0) is False
    assert distributed.is_initialized() is False


def test_incomplete_settings_are_rejected(clean_env):
    with pytest.raises(ValueError, match="num_processes=None, process_id=None"):
        distributed.initialize("127.0.0.1:1234")
    clean_env.setenv("HMRJAX_NUM_PROCESSES", "2")
    with pytest.raises(ValueError, match="num_processes=2 needs a coordinator"):
        distributed.initialize()
    clean_env.setenv("HMRJAX_COORDINATOR", "127.0.0.1:1234")
    with pytest.raises(ValueError, match="process_id=None"):
        distributed.initialize()
