"""Loading the config files of configs/ (ml_collections `get_config()` modules) by path.

Config files live outside the package (configs/); each variant starts from a sibling file, e.g.
`configs/temporal.py` calls `config_beside(__file__, 'default.py')`.
"""

from __future__ import annotations

import importlib.util
import os

import ml_collections


def load_config_file(path: str) -> ml_collections.ConfigDict:
  """Runs `get_config()` of the config file at `path`."""
  if not os.path.exists(path):
    raise FileNotFoundError(f'config file {path!r} does not exist')
  name = 'twostream_config_' + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def config_beside(config_file: str, sibling: str) -> ml_collections.ConfigDict:
  """The config of `sibling` (a file name) in the folder of `config_file` (pass `__file__`)."""
  return load_config_file(os.path.join(os.path.dirname(os.path.abspath(config_file)), sibling))
