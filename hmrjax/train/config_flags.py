"""Command-line config loading: `--config configs/x.py:variant --config.a.b=value ...`, without absl.

`parse_config_flags(argv)` loads the config file (calls its `get_config(arg)`), applies every
`--config.key=value` override (cast to the existing field's type), and returns the config plus the
arguments it did not consume. An unknown key is an error naming it and suggesting close matches.
"""
from __future__ import annotations

import ast
import contextlib
import difflib
import importlib.util
import pathlib
import sys

import ml_collections


class ConfigError(ValueError):
    """A config file, variant or override that cannot be applied."""


def cast_value(key: str, text: str, current):
    """Casts command-line `text` to the type of the field's `current` value.

    bool accepts true/false/1/0/yes/no; int rejects fractions; tuple/list/None fields take a Python
    literal (`(1, 2)`, `None`), falling back to the plain string for None fields.
    """
    if isinstance(current, bool):
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "y", "on"):
            return True
        if lowered in ("0", "false", "no", "n", "off"):
            return False
        raise ConfigError(f"config key '{key}': expected a boolean (true/false), got {text!r}")
    if isinstance(current, int):
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{key}': expected an integer, got {text!r}")
        return value
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"config key '{key}': expected a number, got {text!r}") from None
    if isinstance(current, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if current is None:
            return text
        raise ConfigError(f"config key '{key}': expected a Python literal of type "
                          f"{type(current).__name__}, got {text!r}") from None
    if isinstance(current, (tuple, list)):
        if not isinstance(value, (tuple, list)):
            value = (value,)
        return type(current)(value)
    return value


def flat_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """All leaf keys of `config`, dot-joined ('optim.lr')."""
    keys = []
    for name, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            keys.extend(flat_keys(value, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def set_override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
    """Sets dotted `key` of `config` from command-line `text`; unknown keys raise ConfigError."""
    parts = key.split(".")
    node = config
    for i, part in enumerate(parts):
        is_group = isinstance(node, ml_collections.ConfigDict)
        if not is_group or part not in node:
            close = difflib.get_close_matches(key, flat_keys(config), n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"unknown config key '{key}'{hint}")
        if i < len(parts) - 1:
            node = node[part]
    current = node[parts[-1]]
    if isinstance(current, ml_collections.ConfigDict):
        raise ConfigError(f"config key '{key}' is a group; set its fields ('{key}.<field>=...')")
    with node.unlocked():
        node[parts[-1]] = cast_value(key, text, current)


@contextlib.contextmanager
def _repo_root_on_path(config_path: pathlib.Path):
    """Makes `from configs import common` work for a file in a `configs/` folder."""
    root = str(config_path.resolve().parent.parent)
    added = root not in sys.path
    if added:
        sys.path.insert(0, root)
    try:
        yield
    finally:
        if added and root in sys.path:
            sys.path.remove(root)


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Loads `path/to/config.py[:arg]` by calling its `get_config(arg)`."""
    path_text, _, arg = spec.partition(":")
    path = pathlib.Path(path_text)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path_text}")
    with _repo_root_on_path(path):
        module_spec = importlib.util.spec_from_file_location(f"_hmrjax_config_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        if not hasattr(module, "get_config"):
            raise ConfigError(f"{path_text} defines no get_config(arg)")
        config = module.get_config(arg or None)
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"{path_text}: get_config returned {type(config).__name__}, not a ConfigDict")
    return config


def parse_config_flags(argv: list[str]) -> tuple[ml_collections.ConfigDict, list[str]]:
    """Parses `--config FILE[:ARG]` and `--config.key=value` / `--config.key value` out of `argv`.

    Returns (config, remaining arguments). Overrides apply in order, after the file is loaded.
    """
    spec, overrides, rest = None, [], []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--config" or token.startswith("--config=") or token.startswith("--config."):
            name, sep, value = token.partition("=")
            if not sep:
                if i + 1 >= len(argv):
                    raise ConfigError(f"{token} needs a value")
                value = argv[i + 1]
                i += 1
            if name == "--config":
                spec = value
            else:
                overrides.append((name[len("--config."):], value))
        else:
            rest.append(token)
        i += 1
    if spec is None:
        raise ConfigError("missing --config path/to/config.py[:variant]")
    config = load_config(spec)
    for key, value in overrides:
        set_override(config, key, value)
    return config, rest
