"""Device mesh and shardings for data-parallel training (one `('data',)` axis over all devices).

Parameters and optimizer state are replicated; batches are split along their leading axis. Each
process feeds its own part of the global batch (`jax.make_array_from_process_local_data`), so the same
code runs on one CPU device, several local devices, or several hosts after `jax.distributed.initialize()`.
No TensorFlow here.
"""

from __future__ import annotations

import collections
import functools
from typing import Any, Iterable, Iterator, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = 'data'


def create_mesh() -> Mesh:
  """A 1-D mesh over every device of every process, axis name 'data'."""
  return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def data_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the 'data' axis, the rest replicated."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_global_batch_size(global_batch_size: int, mesh: Mesh) -> None:
  """Raises ValueError unless the global batch splits evenly over devices and processes."""
  n = mesh.devices.size
  if global_batch_size % n or global_batch_size % jax.process_count():
    raise ValueError(f'global batch size {global_batch_size} must be a multiple of the number of '
                     f'devices ({n}) and of processes ({jax.process_count()})')


def global_batch(local_batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles every process's part of a batch into global arrays sharded over 'data'.

  Args:
    local_batch: arrays `[b_local, ...]` of this process (b_local = global / process_count).
    mesh: the data mesh.

  Returns:
    dict of jax.Array `[b_local * process_count, ...]`, sharded along the batch axis.
  """
  sharding = data_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local_batch.items()}


def prefetch_to_device(local_batches: Iterable[Mapping[str, np.ndarray]], mesh: Mesh,
                       size: int = 2) -> Iterator[dict[str, jax.Array]]:
  """`global_batch` of each host batch, with the next `size` batches' transfers started ahead.

  While the caller's step runs on batch i, batches i + 1 .. i + size are already on their way to
  the devices (transfers are asynchronous), so the step does not wait for a host-to-device copy.
  Reads up to `size` batches more from `local_batches` than it yields when the caller stops early.
  """
  queue: collections.deque = collections.deque()
  for local in local_batches:
    queue.append(global_batch(local, mesh))
    if len(queue) > size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places a pytree of host or device arrays replicated on every device of the mesh."""
  return jax.device_put(tree, replicated(mesh))


def to_host(tree: Any, mesh: Mesh) -> Any:
  """Every process's copy of a pytree of (possibly data-sharded) global arrays, as numpy.

  A data-sharded array of several processes is not addressable as a whole from one process;
  an all-gather to a replicated copy (a jitted identity) makes it so.
  """
  gathered = _replicating_identity(mesh)(tree)
  return jax.tree.map(np.asarray, jax.device_get(gathered))


@functools.lru_cache(maxsize=8)
def _replicating_identity(mesh: Mesh):
  """One jitted identity per mesh: a new `jax.jit(lambda)` per call would miss jit's cache."""
  return jax.jit(lambda t: t, out_shardings=replicated(mesh))
