"""`--config file.py:arg --config.a.b=v` parsing and `parse_arg` (configs/common.py)."""
import pathlib

import pytest

from configs import common
from hmrjax.train.config_flags import ConfigError, cast_value, parse_config_flags

TOY = str(pathlib.Path(__file__).resolve().parents[2] / "configs" / "toy.py")


def test_overrides_are_cast_to_field_types_and_rest_is_returned():
    config, rest = parse_config_flags([
        "--config", f"{TOY}:tiny", "--workdir", "W", "--config.optim.lr=0.5", "--config.total_steps", "7",
        "--config.checkpoint.async=false", "--config.optim.frozen=('^backbone/',)", "--config.method=toy",
        "--config.partition_rules=[('kernel$', (None, 'fsdp'))]"])
    assert rest == ["--workdir", "W"]
    assert config.optim.lr == 0.5 and isinstance(config.optim.lr, float)
    assert config.total_steps == 7 and isinstance(config.total_steps, int)
    assert config.checkpoint["async"] is False
    assert tuple(config.optim.frozen) == ("^backbone/",)
    assert tuple(config.partition_rules) == (("kernel$", (None, "fsdp")),)
    assert config.model.image_size == 16 and config.batch_size == 8  # from the tiny variant


def test_typo_is_rejected_naming_the_key_and_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown config key 'optim\.lrr'.*'optim\.lr'"):
        parse_config_flags(["--config", TOY, "--config.optim.lrr=1"])
    with pytest.raises(ConfigError, match=r"unknown config key 'optimm\.lr'"):
        parse_config_flags(["--config", TOY, "--config.optimm.lr=1"])
    with pytest.raises(ConfigError, match="is a group"):
        parse_config_flags(["--config", TOY, "--config.optim=1"])
    with pytest.raises(ConfigError, match="missing --config"):
        parse_config_flags(["--config.optim.lr=1"])
    with pytest.raises(ConfigError, match="not found"):
        parse_config_flags(["--config", "nope/missing.py"])


def test_bad_values_are_rejected_with_the_key():
    with pytest.raises(ConfigError, match="'total_steps': expected an integer"):
        cast_value("total_steps", "1.5", 10)
    with pytest.raises(ConfigError, match="'a': expected a boolean"):
        cast_value("a", "maybe", True)
    with pytest.raises(ConfigError, match="'lr': expected a number"):
        cast_value("lr", "fast", 0.1)
    assert cast_value("x", "None", None) is None and cast_value("x", "abc", None) == "abc"
    assert cast_value("lr", "3", 0.1) == 3.0 and cast_value("n", "-2", 5) == -2


def test_parse_arg_variant_flags_and_unknown_key():
    arg = common.parse_arg("small,depth=False,scale=0.5", variant="tiny", depth=True, scale=1.0)
    assert (arg.variant, arg.depth, arg.scale) == ("small", False, 0.5)
    assert common.parse_arg(None, variant="tiny", depth=False).to_dict() == {"variant": "tiny", "depth": False}
    assert common.parse_arg("depth", variant="tiny", depth=False).depth is True
    with pytest.raises(ValueError, match="unknown config arg 'dept'.*depth"):
        common.parse_arg("dept=1", variant="tiny", depth=True)


def test_toy_variants():
    small, _ = parse_config_flags(["--config", f"{TOY}:small"])
    assert small.model.image_size == 64 and small.method == "toy"
    with pytest.raises(ValueError, match="unknown variant 'huge'"):
        parse_config_flags(["--config", f"{TOY}:huge"])
