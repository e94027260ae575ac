r"""Forward and train-step throughput (images/s) of the Flax models, beside PyTorch's same models.

    python bench/bench_models.py --quick                          # CPU: resnet18, cnn_m_2048, minutes
    python bench/bench_models.py --models=resnet18,cnn_m_2048 --batch=32 --iters=5 --wait_idle=600
    python bench/bench_models.py --models=resnet18,cnn_m_2048 --variants=all --wait_idle=600
    python bench/bench_models.py --models=resnet18,resnet50,vgg16,cnn_m_2048 --batch=64 --iters=20

`--variants` times the same JAX model compiled with other XLA CPU options (`VARIANTS`; the default,
`eigen`, is what `python -m twostream_jax.main` uses on a CPU), interleaved with each other and
with PyTorch in the same run, so that their ratios hold under the same load. Every row prints the
1-minute load average; the run ends with bench/load_check.py's verdict (a loud banner when the
machine was not idle).

A second table gives each step's achieved FLOP/s: the forward's FLOPs are XLA's count for the
model (`cost_analysis`), a train step counts three forwards (the usual convention), and the same
counts divide both frameworks' times. On a CPU each figure is also a fraction of the peak that
bench/cpu_peak.py derives from the cores, clock and vector width (stated in the output), beside
the rate a large float32 matmul reaches in each framework.

JAX runs on its default device (GPU/TPU when there is one). PyTorch (torchvision's model, or an
equivalent nn.Sequential for CNN-M-2048) runs in the same process on the same kind of device when
torch is installed and can use it; otherwise only the JAX figures print. No TensorFlow is imported.

The train step is what training does: softmax cross-entropy, gradients, SGD with momentum 0.9,
BatchNorm statistics updated, dropout on; JAX's is jitted with the state donated.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import cpu_peak  # pylint: disable=wrong-import-order  (the script's folder)
import load_check  # pylint: disable=wrong-import-order
from twostream_jax import models

NUM_CLASSES = 101
DROPOUT = 0.5
# XLA CPU compile options (jax.jit compiler_options, so that each variant is timed in the same
# process as the others and as PyTorch). This jaxlib sends convolutions (forward and both backward
# ones) to YNNPACK fusions by default; an empty `ynn_fusion_type` list leaves them to XLA's own
# (Eigen) convolutions, which `train.cpu_convolutions='eigen'` (main's CPU default) selects.
# Asking for XNNPACK or oneDNN convolutions instead compiled to the same Eigen convolutions (no
# __xnn / oneDNN calls in the compiled HLO), so they are not listed.
VARIANTS = {
    'eigen': {'xla_cpu_experimental_ynn_fusion_type': ''},
    'ynnpack': {},
    'eigen_fast_math': {'xla_cpu_experimental_ynn_fusion_type': '', 'xla_cpu_enable_fast_math': True},
}
MAIN_VARIANT = 'eigen'
MATMUL_SIZE = 2048


def _timed(fn: Callable[[], Any]) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


# Each round calls every function 1 + TIMED_PER_ROUND times in a row and times only the last
# ones. PyTorch's OpenMP threads spin for a while after each parallel region and take a core from
# whatever runs next (a 12 ms JAX convolution timed right after a PyTorch one took 23% longer than
# alone), and an untimed pause instead lets the CPU clock down; the untimed lead call absorbs the
# switch, and the timed calls run back to back, as a training loop's steps do.
TIMED_PER_ROUND = 2


def interleaved_medians(fns: dict[str, Callable[[], Any]], warmup: int,
                         iters: int) -> dict[str, float]:
  """Median seconds per call of each function over `iters` rounds of TIMED_PER_ROUND calls.

  Interleaving the rounds puts JAX and torch under the same background load, so their ratio
  stays meaningful on a shared machine.
  """
  for fn in fns.values():
    for _ in range(warmup):
      fn()
  times: dict[str, list[float]] = {k: [] for k in fns}
  for _ in range(iters):
    for key, fn in fns.items():
      fn()
      times[key].extend(_timed(fn) for _ in range(TIMED_PER_ROUND))
  return {k: statistics.median(v) for k, v in times.items()}


def jax_benchmarks(name: str, batch: int, size: int, channels: int, dtype: str,
                   compiler_options: dict[str, Any] | None = None
                   ) -> tuple[Callable[[], Any], Callable[[], Any], float, float]:
  """(forward, train step, train-step compile seconds, forward FLOPs) of the Flax model, compiled.

  `compiler_options` (a `VARIANTS` value) go to XLA for the forward and the train step on a CPU
  (they are XLA CPU options; other backends compile without them). The FLOPs are XLA's count for
  one forward pass of the whole batch.
  """
  options = (compiler_options or None) if jax.default_backend() == 'cpu' else None
  model = models.build_model(name, NUM_CLASSES, dropout_rate=DROPOUT, dtype=dtype)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((batch, size, size, channels), np.float32))
  labels = jnp.asarray(rng.integers(0, NUM_CLASSES, batch))
  variables = jax.jit(lambda inp: model.init(jax.random.key(0), inp, train=False))(x)
  params = variables['params']
  batch_stats = variables.get('batch_stats', {})
  tx = optax.sgd(0.01, momentum=0.9)
  opt_state = tx.init(params)

  apply_eval = jax.jit(lambda v, inp: model.apply(v, inp, train=False), compiler_options=options)

  def train_step(params, batch_stats, opt_state, inp, lab, key):
    def loss_fn(p):
      logits, updates = model.apply({'params': p, 'batch_stats': batch_stats}, inp, train=True,
                                    rngs={'dropout': key}, mutable=['batch_stats'])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, lab).mean()
      return loss, updates.get('batch_stats', {})
    (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new_stats, opt_state, loss

  step = jax.jit(train_step, donate_argnums=(0, 1, 2), compiler_options=options)
  state = [params, batch_stats, opt_state]
  counter = [0]

  def forward():
    # The train step donates its state, so read the live one rather than `variables`.
    apply_eval({'params': state[0], 'batch_stats': state[1]}, x).block_until_ready()

  def run_step():
    counter[0] += 1
    p, s, o, loss = step(*state, x, labels, jax.random.key(counter[0]))
    state[:] = [p, s, o]
    loss.block_until_ready()

  cost = apply_eval.lower(variables, x).cost_analysis()
  forward_flops = float((cost[0] if isinstance(cost, list) else cost)['flops'])
  forward()
  compile_s = _timed(run_step)
  return forward, run_step, compile_s, forward_flops


def _torch_model(name: str, channels: int):
  """torchvision's model, or CNN-M-2048 as an nn.Sequential, with `channels` input channels."""
  from torch import nn  # pylint: disable=g-import-not-at-top
  if name == 'tiny':
    return None  # no PyTorch twin
  if name.startswith('cnn_m_2048'):
    lrn = lambda: nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
    pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)
    second = [lrn()] if name == 'cnn_m_2048' else []
    return nn.Sequential(
        nn.Conv2d(channels, 96, 7, 2), nn.ReLU(), lrn(), pool(),
        nn.Conv2d(96, 256, 5, 2, 1), nn.ReLU(), *second, pool(),
        nn.Conv2d(256, 512, 3, 1, 1), nn.ReLU(), nn.Conv2d(512, 512, 3, 1, 1), nn.ReLU(),
        nn.Conv2d(512, 512, 3, 1, 1), nn.ReLU(), pool(), nn.Flatten(),
        nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(DROPOUT), nn.Linear(4096, 2048), nn.ReLU(),
        nn.Dropout(DROPOUT), nn.Linear(2048, NUM_CLASSES))
  import torchvision  # pylint: disable=g-import-not-at-top
  model = torchvision.models.get_model(name, weights=None, num_classes=NUM_CLASSES)
  if channels != 3:
    first = model.conv1 if name.startswith('resnet') else model.features[0]
    replacement = nn.Conv2d(channels, first.out_channels, first.kernel_size, first.stride,
                            first.padding, bias=first.bias is not None)
    if name.startswith('resnet'):
      model.conv1 = replacement
    else:
      model.features[0] = replacement
  return model


def torch_benchmarks(name: str, batch: int, size: int, channels: int,
                     device: str) -> tuple[Callable[[], Any], Callable[[], Any]] | None:
  """(forward, train step) of the PyTorch model on `device`, or None when it has no twin."""
  import torch  # pylint: disable=g-import-not-at-top
  model = _torch_model(name, channels)
  if model is None:
    return None
  model = model.to(device)
  x = torch.randn(batch, channels, size, size, device=device)
  labels = torch.randint(0, NUM_CLASSES, (batch,), device=device)
  sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
  with torch.no_grad():
    model.eval()
    model(x)  # materialises LazyLinear
  optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
  loss_fn = torch.nn.CrossEntropyLoss()

  def forward():
    model.eval()
    with torch.no_grad():
      model(x)
    sync()

  def step():
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), labels)
    loss.backward()
    optimizer.step()
    sync()

  return forward, step


def matmul_rates(torch_device: str | None) -> dict[str, float]:
  """FLOP/s of a MATMUL_SIZE^3 float32 matmul in JAX (and PyTorch on `torch_device`)."""
  n = MATMUL_SIZE
  a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n), np.float32))
  dot = jax.jit(lambda u, v: jnp.dot(u, v, precision=jax.lax.Precision.HIGHEST))
  fns = {'JAX': lambda: dot(a, a).block_until_ready()}
  if torch_device:
    import torch  # pylint: disable=g-import-not-at-top
    ta = torch.from_numpy(np.array(a)).to(torch_device)
    sync = torch.cuda.synchronize if torch_device == 'cuda' else (lambda: None)
    fns['PyTorch'] = lambda: (torch.mm(ta, ta), sync())
  sec = interleaved_medians(fns, warmup=2, iters=5)
  return {k: 2 * n**3 / v for k, v in sec.items()}


def _torch_device(jax_platform: str) -> str | None:
  """The torch device matching JAX's, or None when torch is absent or cannot use it."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  if jax_platform == 'cpu':
    torch.set_num_threads(os.cpu_count() or 1)
    return 'cpu'
  if jax_platform == 'gpu' and torch.cuda.is_available():
    return 'cuda'
  return None


def _print_flop_table(rows: list[tuple[str, float, dict[str, float]]],
                      peak: cpu_peak.CpuPeak | None) -> None:
  """Achieved GFLOP/s per step (and the fraction of the CPU's peak) of each timed function."""
  print('achieved GFLOP/s (forward: XLA\'s FLOP count of the model; train step: 3 x forward)'
        + (' and fraction of the CPU peak' if peak else ''))
  columns = ('JAX fwd', 'torch fwd', 'JAX train', 'torch train')
  print(f'{"model":<30}{"GFLOP/img":>10}' + ''.join(f'{c:>17}' for c in columns))
  for label, flops_per_image, rates in rows:
    cells = []
    for column in columns:
      if column not in rates:
        cells.append(f'{"-":>17}')
        continue
      rate = rates[column]
      share = f' ({rate / peak.flops:.2f})' if peak else ''
      cells.append(f'{f"{rate / 1e9:.1f}{share}":>17}')
    print(f'{label:<30}{flops_per_image / 1e9:>10.2f}' + ''.join(cells), flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--models', default=None,
                      help='comma-separated model names (default: resnet18,cnn_m_2048 on CPU; '
                      'resnet18,resnet50,vgg16,cnn_m_2048 on an accelerator)')
  parser.add_argument('--batch', type=int, default=None, help='default 8 on CPU, 64 otherwise')
  parser.add_argument('--size', type=int, default=224)
  parser.add_argument('--channels', type=int, default=3, help='3 (RGB) or 2L (flow stacks)')
  parser.add_argument('--dtype', default=None, help="JAX compute dtype (default float32 on CPU, "
                      "bfloat16 otherwise)")
  parser.add_argument('--iters', type=int, default=None, help='interleaved rounds (median)')
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--no_torch', action='store_true', help='JAX only')
  parser.add_argument('--variants', default=MAIN_VARIANT,
                      help=f'comma-separated XLA option sets from {list(VARIANTS)}, or "all" '
                      f'(default {MAIN_VARIANT}: what main uses on a CPU)')
  parser.add_argument('--clock_ghz', type=float, default=None,
                      help='CPU clock for the peak FLOP/s (default: read from the system)')
  parser.add_argument('--fma_pipes', type=int, default=2,
                      help='FMA pipes per core for the peak FLOP/s (default 2)')
  parser.add_argument('--quick', action='store_true',
                      help='resnet18 and cnn_m_2048, batch 8, 3 iterations: a few minutes on a CPU')
  load_check.add_arguments(parser)
  args = parser.parse_args()
  variants = list(VARIANTS) if args.variants == 'all' else args.variants.split(',')
  unknown = [v for v in variants if v not in VARIANTS]
  if unknown:
    parser.error(f'unknown --variants {unknown}; known: {list(VARIANTS)}')
  monitor = load_check.LoadMonitor(args.wait_idle)

  device = jax.devices()[0]
  on_cpu = device.platform == 'cpu'
  default_models = 'resnet18,cnn_m_2048' if on_cpu or args.quick else 'resnet18,resnet50,vgg16,cnn_m_2048'
  names = (args.models or default_models).split(',')
  batch = args.batch or (8 if on_cpu or args.quick else 64)
  iters = args.iters or (3 if on_cpu or args.quick else 20)
  dtype = args.dtype or ('float32' if on_cpu else 'bfloat16')
  torch_device = None if args.no_torch else _torch_device(device.platform)

  print(f'JAX {jax.__version__} on {device.platform} ({device.device_kind}), '
        f'{os.cpu_count()} CPU cores; batch {batch}, {args.size}x{args.size}x{args.channels}, '
        f'JAX dtype {dtype}, median of {iters} interleaved rounds of {TIMED_PER_ROUND} timed calls '
        f'after an untimed one; {monitor.now()}')
  if torch_device:
    import torch  # pylint: disable=g-import-not-at-top
    print(f'PyTorch {torch.__version__} on {torch_device} ({torch.get_num_threads()} threads), '
          'float32')
  peak = cpu_peak.cpu_peak(args.clock_ghz, args.fma_pipes) if on_cpu else None
  if peak:
    print(f'{cpu_peak.model_name()}: {peak.describe()}')
  rates = matmul_rates(torch_device)
  print(f'float32 matmul {MATMUL_SIZE}^3: ' + ', '.join(
      f'{k} {v / 1e9:.0f} GFLOP/s' + (f' ({v / peak.flops:.2f} of peak)' if peak else '')
      for k, v in rates.items()))
  header = (f'{"model":<30}{"JAX fwd":>10}{"torch fwd":>11}{"ratio":>7}'
            f'{"JAX train":>11}{"torch train":>13}{"ratio":>7}{"compile s":>11}{"load":>7}')
  print('images/s (ratio = JAX / torch)')
  print(header)
  flop_rows = []
  for name in names:
    fns, compile_s = {}, {}
    for variant in variants:
      (fns[f'jax_fwd/{variant}'], fns[f'jax_train/{variant}'], compile_s[variant],
       forward_flops) = jax_benchmarks(name, batch, args.size, args.channels, dtype,
                                       VARIANTS[variant])
    torch_fns = (torch_benchmarks(name, batch, args.size, args.channels, torch_device)
                 if torch_device else None)
    if torch_fns:
      fns['torch_fwd'], fns['torch_train'] = torch_fns
    sec = interleaved_medians(fns, args.warmup, iters)
    load = f'{load_check.load_average() or 0:>7.2f}'
    for variant in variants:
      label = name if variant == MAIN_VARIANT else f'{name} [{variant}]'
      jf, jt = batch / sec[f'jax_fwd/{variant}'], batch / sec[f'jax_train/{variant}']
      if torch_fns:
        tf_, tt = batch / sec['torch_fwd'], batch / sec['torch_train']
        print(f'{label:<30}{jf:>10.1f}{tf_:>11.1f}{jf / tf_:>7.2f}{jt:>11.1f}{tt:>13.1f}'
              f'{jt / tt:>7.2f}{compile_s[variant]:>11.1f}{load}', flush=True)
      else:
        print(f'{label:<30}{jf:>10.1f}{"-":>11}{"-":>7}{jt:>11.1f}{"-":>13}{"-":>7}'
              f'{compile_s[variant]:>11.1f}{load}', flush=True)
      flop_rows.append((label, forward_flops / batch, {
          'JAX fwd': forward_flops / sec[f'jax_fwd/{variant}'],
          'JAX train': 3 * forward_flops / sec[f'jax_train/{variant}'],
          **({'torch fwd': forward_flops / sec['torch_fwd'],
              'torch train': 3 * forward_flops / sec['torch_train']} if torch_fns else {})}))
  _print_flop_table(flop_rows, peak)
  print(monitor.verdict())


if __name__ == '__main__':
  main()
