"""Model zoo: CNN-M-2048 (the paper's net), torchvision-layout ResNets and VGG-16, a tiny test net;
torchvision weight conversion (`torchvision_conversion`) and pretrained loading (`pretrained`).

Every model is a Flax Linen module called as

    logits = model.apply(variables, x, train=False)                      # x: [B, H, W, C]
    logits, updates = model.apply(variables, x, train=True, mutable=['batch_stats'],
                                  rngs={'dropout': key})

with any number of input channels C (3 for RGB, 2L for a stack of L flow fields). Logits are
float32 [B, num_classes], or a tuple of [B, n_k] when num_classes is a tuple (one head per task).
The classifier is the top-level param `head` (or `head_0`, `head_1`, ...). No TensorFlow here;
imports nothing of the package outside `twostream_jax.models` (torch only inside the converter).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn

from twostream_jax.models import layers
from twostream_jax.models.cnn_m import CNNM2048
from twostream_jax.models.resnet import ResNet
from twostream_jax.models.small import SmallNet
from twostream_jax.models.tiny import TinyNet
from twostream_jax.models.vgg import VGG

_FACTORIES: dict[str, Callable[..., nn.Module]] = {
    'tiny': TinyNet,
    'small': SmallNet,
    'cnn_m_2048': functools.partial(CNNM2048, second_lrn=True),
    'cnn_m_2048_temporal': functools.partial(CNNM2048, second_lrn=False),
    'resnet18': functools.partial(ResNet, depth=18),
    'resnet34': functools.partial(ResNet, depth=34),
    'resnet50': functools.partial(ResNet, depth=50),
    'resnet101': functools.partial(ResNet, depth=101),
    'resnet152': functools.partial(ResNet, depth=152),
    'vgg16': functools.partial(VGG, batch_norm=False),
    'vgg16_bn': functools.partial(VGG, batch_norm=True),
}
MODEL_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def build_model(name: str, num_classes: int | tuple[int, ...], *, dropout_rate: float = 0.0,
                dtype: str = 'float32', **kwargs: Any) -> nn.Module:
  """Builds a model by name.

  Args:
    name: one of MODEL_NAMES ('tiny', 'small' (the CPU demo's net), 'cnn_m_2048',
      'cnn_m_2048_temporal', 'resnet18', ..., 'resnet152', 'vgg16', 'vgg16_bn').
    num_classes: classes of the single head `head`, or a tuple giving one head per task
      (`head_0`, `head_1`, ...), e.g. (101, 51) for UCF101 + HMDB51 multi-task training.
    dropout_rate: dropout before the classifier (VGG, CNN-M: after each hidden fully-connected
      layer).
    dtype: compute dtype, 'float32' or 'bfloat16'; parameters always stay float32.
    **kwargs: further attributes of the model class (e.g. `second_lrn` for CNN-M).

  Returns:
    An unbound flax.linen.Module; call `init(rngs, x, train=False)` then `apply`.

  Raises:
    ValueError: unknown name, bad num_classes, dtype or dropout_rate, or an unknown keyword.
  """
  if name not in _FACTORIES:
    raise ValueError(f'Unknown model {name!r}; valid names: {", ".join(MODEL_NAMES)}.')
  if not 0.0 <= dropout_rate < 1.0:
    raise ValueError(f'dropout_rate must be in [0, 1), got {dropout_rate}.')
  num_classes = layers.canonical_num_classes(num_classes)
  compute_dtype = layers.canonical_dtype(dtype)
  try:
    return _FACTORIES[name](num_classes=num_classes, dropout_rate=float(dropout_rate),
                            dtype=compute_dtype, **kwargs)
  except TypeError as e:
    raise ValueError(f'Model {name!r} does not accept the options {sorted(kwargs)}: {e}') from e


__all__ = ['MODEL_NAMES', 'build_model', 'CNNM2048', 'ResNet', 'SmallNet', 'TinyNet', 'VGG']
