"""`python -m twostream_jax.main` command lines for a config built in a test (e.g. `tiny_train_config`).

`main_command(config, workdir)` starts from configs/default.py and passes every key where `config`
differs as a `--config.<key>=value` flag, so a subprocess runs the config an in-process test uses.
`run_signalled` runs such a command and sends it a signal at the first output line that asks for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Callable

import ml_collections

from twostream_jax.train import restore
from tests.config_fixtures import REPO_ROOT, default_config


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


def run_signalled(command: list[str], signal_at: Callable[[str], bool], signum: int,
                  stderr: int = subprocess.STDOUT, timeout: float = 300) -> tuple[int, str]:
  """Runs `command` (cwd: the repository root), sends `signum` at each stdout line for which
  `signal_at(line)` holds, and returns (exit status, stdout)."""
  proc = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
  lines = []
  try:
    for line in proc.stdout:
      lines.append(line)
      if signal_at(line):
        proc.send_signal(signum)
    returncode = proc.wait(timeout=timeout)
  finally:
    proc.kill()
  return returncode, ''.join(lines)
