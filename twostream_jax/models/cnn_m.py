"""CNN-M-2048, the ConvNet of both streams in Simonyan & Zisserman (2014), Fig. 1.

CNN-M of Chatfield et al. (2014) with a 2048-wide full7:

    conv1 7x7/2 96, ReLU, LRN, maxpool 3x3/2
    conv2 5x5/2 256 pad 1, ReLU, LRN (spatial stream only), maxpool 3x3/2
    conv3, conv4, conv5 3x3/1 512 pad 1, ReLU; maxpool 3x3/2
    full6 4096, ReLU, dropout; full7 2048, ReLU, dropout; head (softmax in the loss)

Pooling rounds up as Caffe does: a 224x224 input gives pool1 54x54, pool2 13x13, pool5 6x6 (18432
features into full6). Each stage's output is sown into 'intermediates' as `conv1_relu`, `pool1`,
..., `conv5_relu`, `pool5`, `full6_relu`, `full7_relu` (pass `mutable=['intermediates']` to
`apply` to read them). Design: docs/design_notes.md.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from twostream_jax.models import layers
from twostream_jax.models import strided_conv

Dtype = Any

# (name, features, kernel, stride, padding) of the five convolutions.
CNN_M_CONVS: tuple[tuple[str, int, int, int, int], ...] = (
    ('conv1', 96, 7, 2, 0),
    ('conv2', 256, 5, 2, 1),
    ('conv3', 512, 3, 1, 1),
    ('conv4', 512, 3, 1, 1),
    ('conv5', 512, 3, 1, 1),
)
CNN_M_FULL6 = 4096
CNN_M_FULL7 = 2048


class CNNM2048(nn.Module):
  """CNN-M-2048 on NHWC input with any number of channels (3 for RGB, 2L for flow stacks).

  Attributes:
    num_classes: int (one head `head`) or tuple (heads `head_0`, `head_1`, ...).
    second_lrn: keep the LRN after conv2 (spatial stream) or drop it (temporal stream).
    dropout_rate: rate of the dropout after full6 and full7 (the paper: 0.5-0.9).
    dtype: compute dtype; parameters stay float32.
  """
  num_classes: int | tuple[int, ...]
  second_lrn: bool = True
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array | tuple[jax.Array, ...]:
    """Classifies images or flow stacks.

    Args:
      x: [B, H, W, C] float input, H, W >= about 100 (224 in the paper).
      train: dropout on (True) or off (False).

    Returns:
      float32 logits [B, num_classes], or a tuple of [B, n_k] for several heads.
    """
    x = x.astype(self.dtype)
    for name, features, kernel, stride, pad in CNN_M_CONVS:
      x = nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                  padding=((pad, pad), (pad, pad)), dtype=self.dtype, param_dtype=jnp.float32,
                  kernel_init=layers.conv_kernel_init,
                  conv_general_dilated=strided_conv.conv_general_dilated, name=name)(x)
      x = nn.relu(x)
      self.sow('intermediates', f'{name}_relu', x)
      if name == 'conv1' or (name == 'conv2' and self.second_lrn):
        x = layers.LocalResponseNorm()(x)
      if name in ('conv1', 'conv2', 'conv5'):
        x = layers.max_pool_ceil(x, 3, 2)
        self.sow('intermediates', 'pool' + name[-1], x)

    x = x.reshape(x.shape[0], -1)
    dense_init = nn.initializers.variance_scaling(2.0, 'fan_in', 'normal')
    for name, width in (('full6', CNN_M_FULL6), ('full7', CNN_M_FULL7)):
      x = nn.Dense(width, dtype=self.dtype, param_dtype=jnp.float32, kernel_init=dense_init,
                   name=name)(x)
      x = nn.relu(x)
      self.sow('intermediates', f'{name}_relu', x)
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return layers.apply_heads(x, self.num_classes, self.dtype)
