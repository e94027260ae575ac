"""A stream's per-video scores from its view logits: the softmax, and the name scores go under.

Shared by evaluation on the records (`evaluate`) and prediction from video files
(`inference.stream_predictor`), so that both score a video alike. Numpy only: no JAX, no TensorFlow.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
  """Softmax over the last axis (numpy, stable).

  Args:
    logits: float `[..., K]`.

  Returns:
    float `[..., K]`, rows summing to 1, in the dtype of `logits`.
  """
  z = logits - logits.max(axis=-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=-1, keepdims=True)


def stream_name(modality: str, override: str = '') -> str:
  """The name a stream's scores go under: `override` (`eval.stream_name`) when given, else
  'spatial' for modality 'rgb' and 'temporal' for 'flow'."""
  if override:
    return override
  return 'spatial' if modality == 'rgb' else 'temporal'
