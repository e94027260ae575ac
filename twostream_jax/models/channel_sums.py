"""Per-channel sums of a 2-D array, as a matrix-vector product on CPU.

XLA's CPU backend rewrites a large reduction over the leading axis into a tree of reduce-windows
that run several times slower than a `[1, M] x [M, C]` product with ones; batch norm's statistics
and gradients are such reductions. Other backends keep `jnp.sum`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def _sums_by_product(x: jax.Array) -> jax.Array:
  # The barrier keeps XLA from seeing the constant ones and turning the product back into a reduce.
  ones = lax.optimization_barrier(jnp.ones((1, x.shape[0]), x.dtype))
  return jnp.dot(ones, x, precision=lax.Precision.HIGHEST)[0]


def channel_sums(x: jax.Array) -> jax.Array:
  """Sums `x` [M, C] over M; returns [C] in x's dtype."""
  return lax.platform_dependent(x, cpu=_sums_by_product, default=lambda v: jnp.sum(v, axis=0))
