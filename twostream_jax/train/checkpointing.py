"""orbax checkpoints of the training state, kept under `<workdir>/checkpoints/<step>/`.

Each checkpoint holds two items: `state` (a plain nested dict: step, params, batch_stats, opt_state)
and `meta` (JSON: step, seed, the data stream's position, the config). The data stream is a pure
function of (seed, step) (`data.train_dataset`), so `meta` is all a resumed run needs besides `state`.

Restoring in a fresh process needs nothing from this package:

    import orbax.checkpoint as ocp
    state = ocp.StandardCheckpointer().restore('<workdir>/checkpoints/<step>/state')
    params, batch_stats = state['params'], state['batch_stats']

No TensorFlow here.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from twostream_jax.train.state import TrainState

CHECKPOINT_SUBDIR = 'checkpoints'


def state_to_tree(state: TrainState) -> dict[str, Any]:
  """The arrays of a TrainState as a plain dict (what is written)."""
  return {'step': state.step, 'params': state.params, 'batch_stats': state.batch_stats,
          'opt_state': state.opt_state}


class Checkpointer:
  """Saves every `every_steps` (and when forced), keeps the latest `keep`, restores the latest."""

  def __init__(self, workdir: str, *, keep: int, every_steps: int):
    self.directory = os.path.abspath(os.path.join(workdir, CHECKPOINT_SUBDIR))
    self.every_steps = int(every_steps)
    self._manager = ocp.CheckpointManager(
        self.directory, item_names=('state', 'meta'),
        options=ocp.CheckpointManagerOptions(max_to_keep=int(keep), create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def should_save(self, step: int) -> bool:
    return self.every_steps > 0 and step % self.every_steps == 0

  def save(self, state: TrainState, meta: dict[str, Any]) -> None:
    """Saves `state` at its step (asynchronously; `wait` before relying on it)."""
    step = int(jax.device_get(state.step))
    if step in self._manager.all_steps():
      return
    # force: this class decides when to save (intervals, the last step, a stop signal); orbax's
    # own policy could skip a step while an earlier save is still being written.
    self._manager.save(step, force=True, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state_to_tree(state)), meta=ocp.args.JsonSave(meta)))

  def read_meta(self, step: int | None = None) -> dict[str, Any]:
    """The `meta` item of a checkpoint (the latest by default), without reading the state."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'no checkpoint under {self.directory}')
    restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return restored['meta']

  def restore(self, target: TrainState, step: int | None = None) -> tuple[TrainState, dict[str, Any]]:
    """Restores a checkpoint into the structure and shardings of `target`.

    Args:
      target: a TrainState of the same model and optimizer (e.g. freshly initialised and placed);
        its arrays' shardings say where the restored arrays go.
      step: which checkpoint; the latest by default.

    Returns:
      (state, meta).
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'no checkpoint under {self.directory}')
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state_to_tree(target))
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    tree = restored['state']
    state = target.replace(step=tree['step'], params=tree['params'],
                           batch_stats=tree['batch_stats'], opt_state=tree['opt_state'])
    return state, restored['meta']

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()
