"""`python -m twostream_jax.main` command lines for a config built in a test (e.g. `tiny_train_config`).

`main_command(config, workdir)` starts from configs/default.py and passes every key where `config`
differs as a `--config.<key>=value` flag, so a subprocess runs the config an in-process test uses.
"""

from __future__ import annotations

import json
import sys

import ml_collections

from twostream_jax.train import restore
from tests.config_fixtures import default_config


def config_flags(config: ml_collections.ConfigDict) -> list[str]:
  """`--config.<key>=value` for each key whose value differs from configs/default.py."""
  base = restore.flat_keys(json.loads(default_config().to_json()))
  flags = []
  for key, value in restore.flat_keys(json.loads(config.to_json())).items():
    if base.get(key) != value:
      flags.append(f'--config.{key}={value}')
  return flags


def main_command(config: ml_collections.ConfigDict, workdir: str) -> list[str]:
  """The command line that runs `config` with `--workdir=workdir` (cwd: the repository root)."""
  return [sys.executable, '-m', 'twostream_jax.main', '--config=configs/default.py',
          f'--workdir={workdir}', *config_flags(config)]
