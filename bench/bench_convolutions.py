r"""Each convolution of ResNet-18 and CNN-M-2048 alone: forward, input gradient, kernel gradient.

    python bench/bench_convolutions.py --batch=8 --wait_idle=600

Milliseconds per call (median, JAX and PyTorch timed round-robin in one process), times the number
of such layers in the model, for the convolutions a train step runs: the first layer's input
gradient is not (nothing needs it) and is not timed. JAX compiles each with XLA's Eigen
convolutions (what `python -m twostream_jax.main` uses on a CPU) through the models' own
`strided_conv.conv_general_dilated`, so strided layers use their phase-split gradients; PyTorch
calls `aten.convolution_backward` for one gradient at a time. Rounds as in bench_models.py: an
untimed call, then timed ones back to back, so that one framework's threads do not slow the other.
The totals show how much of a train step's difference to PyTorch lies in the convolutions.
"""

from __future__ import annotations

import argparse
import functools
import os

import jax
import numpy as np

import bench_models  # pylint: disable=wrong-import-order  (the script's folder)
import load_check  # pylint: disable=wrong-import-order
from twostream_jax.models import strided_conv

NHWC = ('NHWC', 'HWIO', 'NHWC')
# (label, input size, in channels, out channels, kernel, stride, padding, count, first layer)
LAYERS = {
    'resnet18': (
        ('conv1 7x7/2', 224, 3, 64, 7, 2, 3, 1, True),
        ('layer1 3x3', 56, 64, 64, 3, 1, 1, 4, False),
        ('layer2_0 3x3/2', 56, 64, 128, 3, 2, 1, 1, False),
        ('layer2 downsample 1x1/2', 56, 64, 128, 1, 2, 0, 1, False),
        ('layer2 3x3', 28, 128, 128, 3, 1, 1, 3, False),
        ('layer3_0 3x3/2', 28, 128, 256, 3, 2, 1, 1, False),
        ('layer3 downsample 1x1/2', 28, 128, 256, 1, 2, 0, 1, False),
        ('layer3 3x3', 14, 256, 256, 3, 1, 1, 3, False),
        ('layer4_0 3x3/2', 14, 256, 512, 3, 2, 1, 1, False),
        ('layer4 downsample 1x1/2', 14, 256, 512, 1, 2, 0, 1, False),
        ('layer4 3x3', 7, 512, 512, 3, 1, 1, 3, False),
    ),
    'cnn_m_2048': (
        ('conv1 7x7/2', 224, 3, 96, 7, 2, 0, 1, True),
        ('conv2 5x5/2', 54, 96, 256, 5, 2, 1, 1, False),
        ('conv3 3x3', 13, 256, 512, 3, 1, 1, 1, False),
        ('conv4-5 3x3', 13, 512, 512, 3, 1, 1, 2, False),
    ),
}


def _layer_functions(batch, size, cin, cout, kernel, stride, pad, first):
  """{'JAX fwd': f, 'JAX dx': f, ...}: each computes one thing and waits for it."""
  import torch  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  x = rng.standard_normal((batch, size, size, cin), np.float32)
  w = (rng.standard_normal((kernel, kernel, cin, cout)) * 0.05).astype(np.float32)
  pads = ((pad, pad), (pad, pad))

  def conv(v, k):
    return strided_conv.conv_general_dilated(v, k, (stride, stride), pads, dimension_numbers=NHWC)

  g = rng.standard_normal(jax.eval_shape(conv, x, w).shape).astype(np.float32)
  x, w, g = jax.device_put(x), jax.device_put(w), jax.device_put(g)
  jit = functools.partial(jax.jit,
                          compiler_options=bench_models.VARIANTS[bench_models.MAIN_VARIANT])
  forward = jit(conv)
  input_grad = jit(lambda k, c: jax.vjp(lambda v: conv(v, k), x)[1](c)[0])
  kernel_grad = jit(lambda v, c: jax.vjp(lambda k: conv(v, k), w)[1](c)[0])
  tx = torch.from_numpy(np.array(x).transpose(0, 3, 1, 2).copy())
  tw = torch.from_numpy(np.array(w).transpose(3, 2, 0, 1).copy())
  tg = torch.from_numpy(np.array(g).transpose(0, 3, 1, 2).copy())

  def torch_grad(mask):
    return lambda: torch.ops.aten.convolution_backward(
        tg, tx, tw, None, [stride] * 2, [pad] * 2, [1, 1], False, [0, 0], 1, mask)

  fns = {
      'JAX fwd': lambda: forward(x, w).block_until_ready(),
      'torch fwd': lambda: torch.nn.functional.conv2d(tx, tw, stride=stride, padding=pad),
      'JAX dw': lambda: kernel_grad(x, g).block_until_ready(),
      'torch dw': torch_grad([False, True, False]),
  }
  if not first:
    fns['JAX dx'] = lambda: input_grad(w, g).block_until_ready()
    fns['torch dx'] = torch_grad([True, False, False])
  return fns


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--models', default='resnet18,cnn_m_2048')
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--iters', type=int, default=7)
  load_check.add_arguments(parser)
  args = parser.parse_args()
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count() or 1)
  monitor = load_check.LoadMonitor(args.wait_idle)
  print(f'JAX {jax.__version__} (Eigen convolutions), PyTorch {torch.__version__} '
        f'({torch.get_num_threads()} threads); batch {args.batch}, float32, ms per call x layers; '
        f'{monitor.now()}')
  kinds = ('fwd', 'dx', 'dw')
  for name in args.models.split(','):
    print(f'\n{name}')
    print(f'{"layer":<26}{"n":>3}' + ''.join(f'{"JAX " + k:>10}{"torch " + k:>11}' for k in kinds))
    totals = {f'{f} {k}': 0.0 for f in ('JAX', 'torch') for k in kinds}
    for label, size, cin, cout, kernel, stride, pad, count, first in LAYERS[name]:
      fns = _layer_functions(args.batch, size, cin, cout, kernel, stride, pad, first)
      seconds = bench_models.interleaved_medians(fns, warmup=2, iters=args.iters)
      ms = {k: 1e3 * v for k, v in seconds.items()}
      cells = []
      for kind in kinds:
        for framework, width in (('JAX', 10), ('torch', 11)):
          key = f'{framework} {kind}'
          if key in ms:
            totals[key] += count * ms[key]
            cells.append(f'{count * ms[key]:>{width}.1f}')
          else:
            cells.append(f'{"-":>{width}}')
      print(f'{label:<26}{count:>3}' + ''.join(cells), flush=True)
    print(f'{"total":<29}' + ''.join(f'{totals[f"JAX {k}"]:>10.1f}{totals[f"torch {k}"]:>11.1f}'
                                     for k in kinds))
    jax_all = sum(v for k, v in totals.items() if k.startswith('JAX'))
    torch_all = sum(v for k, v in totals.items() if k.startswith('torch'))
    print(f'all convolutions of a train step: JAX {jax_all:.0f} ms, PyTorch {torch_all:.0f} ms '
          f'(JAX / PyTorch time {jax_all / torch_all:.2f})')
  print(monitor.verdict())


if __name__ == '__main__':
  main()
