r"""Cost of a "last layer only" training step against fine-tuning every layer.

    python bench/bench_last_layer.py            # the demo's small net, 96x96, batch 32
    python bench/bench_last_layer.py --quick    # fewer timed steps (a minute)
    python bench/bench_last_layer.py --model=resnet18 --size=112 --batch=16

Three jitted steps on the same batch, timed round-robin (so that they share the machine's load):
  * all layers: `train_steps.train_step`, every parameter trained (BatchNorm in training mode);
  * masked: the same step with `optim.train_last_layer_only`'s optimizer mask (what the package did
    before `train.last_layer`: BatchNorm still in training mode, its statistics moving; XLA drops
    the unused backbone gradients);
  * last layer: `last_layer.train_step`, the backbone in inference mode and gradients of the heads
    only.
Prints ms per step and the ratios, with the 1-minute load average: a figure taken while the
machine is loaded (load > 0.5) is unreliable, and the script says so; the ratios within one run are
the more robust figure.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time

import jax
import numpy as np

from twostream_jax import config_loading
from twostream_jax.train import last_layer
from twostream_jax.train import optimizer as optimizer_lib
from twostream_jax.train import state as state_lib
from twostream_jax.train import steps as train_steps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _state(model_name: str, size: int, last_only: bool, num_classes: int):
  c = config_loading.load_config_file(os.path.join(REPO, 'configs', 'default.py'))
  c.model.name = model_name
  c.model.dropout_rate = 0.5
  c.optim.train_last_layer_only = last_only
  model = state_lib.build_model(c, num_classes)
  return c, state_lib.create_train_state(c, model, (size, size, 3), jax.random.key(0))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--model', default='small')
  parser.add_argument('--size', type=int, default=96)
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--classes', type=int, default=101)
  parser.add_argument('--iters', type=int, default=20)
  parser.add_argument('--quick', action='store_true', help='8 timed steps of each')
  args = parser.parse_args()
  iters = 8 if args.quick else args.iters
  rng = np.random.default_rng(0)
  batch = {'inputs': rng.normal(size=(args.batch, args.size, args.size, 3)).astype(np.float32),
           'label': rng.integers(0, args.classes, args.batch).astype(np.int32),
           'dataset_index': np.zeros(args.batch, np.int32)}
  runs = {}
  for name, last_only in (('all layers', False), ('masked', True), ('last layer', True)):
    c, state = _state(args.model, args.size, last_only, args.classes)
    lr_fn = optimizer_lib.learning_rate_schedule(c.optim)
    if name == 'last layer':
      fn = functools.partial(last_layer.train_step, learning_rate_fn=lr_fn, dropout_rate=0.5)
    else:
      fn = functools.partial(train_steps.train_step, learning_rate_fn=lr_fn)
    runs[name] = [jax.jit(fn, donate_argnums=(0,)), state]

  def one(name):
    fn, state = runs[name]
    state, metrics = fn(state, batch, jax.random.key(1))
    jax.block_until_ready(metrics['loss'])
    runs[name][1] = state

  for name in runs:  # compile and warm up
    one(name)
    one(name)
  times = {name: [] for name in runs}
  for _ in range(iters):
    for name in runs:
      start = time.perf_counter()
      one(name)
      times[name].append(time.perf_counter() - start)
  load = os.getloadavg()[0]
  print(f'{args.model} {args.size}x{args.size} batch {args.batch}, {args.classes} classes, '
        f'{jax.devices()[0].platform} x{jax.device_count()}, median of {iters} steps; '
        f'1-minute load average {load:.2f}')
  if load > 0.5:
    print(f'WARNING: load average {load:.2f} > 0.5: the machine is busy, absolute times are '
          'unreliable; compare the ratios only')
  base = statistics.median(times['all layers'])
  for name, t in times.items():
    ms = 1000 * statistics.median(t)
    print(f'  {name:>10}: {ms:8.1f} ms/step   {base / statistics.median(t):5.2f}x the speed of '
          'all layers')


if __name__ == '__main__':
  main()
