"""A tiny ConvNet for tests: two convolutions with BatchNorm, global pooling, dropout, heads.

It has the same interface and variable collections ('params', 'batch_stats') as the big models,
so tests of training, checkpointing and evaluation exercise every code path in seconds on a CPU.
About 20K parameters for 3 input channels and 10 classes.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from twostream_jax.models import layers
from twostream_jax.models import strided_conv

Dtype = Any

TINY_WIDTHS = (32, 64)


class TinyNet(nn.Module):
  """conv3x3 32 + BN + ReLU, conv3x3/2 64 + BN + ReLU, global average pool, dropout, head(s).

  Attributes:
    num_classes: int (one head `head`) or tuple (heads `head_0`, `head_1`, ...).
    dropout_rate: dropout before the classifier.
    dtype: compute dtype; parameters and batch statistics stay float32.
  """
  num_classes: int | tuple[int, ...]
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array | tuple[jax.Array, ...]:
    """Classifies `x` [B, H, W, C] (any H, W >= 1); returns float32 logits [B, n] or a tuple."""
    x = x.astype(self.dtype)
    for i, width in enumerate(TINY_WIDTHS):
      stride = 1 if i == 0 else 2
      x = nn.Conv(width, (3, 3), strides=(stride, stride), padding=((1, 1), (1, 1)),
                  use_bias=False, dtype=self.dtype, param_dtype=jnp.float32,
                  kernel_init=layers.conv_kernel_init,
                  conv_general_dilated=strided_conv.conv_general_dilated, name=f'conv{i + 1}')(x)
      x = layers.TorchBatchNorm(dtype=self.dtype, name=f'bn{i + 1}')(x, train)
      x = nn.relu(x)
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return layers.apply_heads(x, self.num_classes, self.dtype)
