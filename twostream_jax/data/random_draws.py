"""Uniform draws for the input pipeline: one stateless call per group of examples, then integers.

Each random op costs about as much as a whole crop in tf.data on CPU, so a group of training
examples draws all its numbers with one `uniforms` call and derives integers (`uniform_int`) and
boxes from them.
TensorFlow only (no JAX).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

TensorLike = Any  # a tf.Tensor, or a value tf.convert_to_tensor accepts


def uniforms(seed: TensorLike, count: int) -> tf.Tensor:
  """`count` independent uniform numbers in [0, 1) (float32) from a `[2]` int seed (stateless)."""
  return tf.random.stateless_uniform([count], tf.cast(seed, tf.int64))


def uniform_int(u: TensorLike, n: TensorLike) -> tf.Tensor:
  """An int32 in [0, n) from a uniform u in [0, 1) (clamped against float rounding up to n)."""
  n = tf.cast(n, tf.int32)
  return tf.minimum(tf.cast(tf.floor(u * tf.cast(n, tf.float32)), tf.int32), n - 1)
