"""Evaluation under the paper's protocol vs the model's plain forward throughput, in one run.

    python bench/bench_evaluation.py [--model small --modality flow --num_videos 4 --size 112]

Writes a few records (tests/record_fixtures: 340x256 frames by default, 30 frames per video) to a
temporary folder, then measures:
  * forward: the jitted eval step on device-resident random inputs of the eval batch shape
    (views/s: the model alone);
  * protocol: `evaluation.score_split` over the split with 25 frames x 10 crops per video (views/s
    and videos/s: reading + decoding + cropping + the same jitted step + per-video averaging).
The ratio protocol/forward says how much of the model's speed the evaluation keeps. Prints one line
per measurement.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from tests import record_fixtures  # pylint: disable=g-import-not-at-top
from tests.config_fixtures import default_config  # pylint: disable=g-import-not-at-top
from twostream_jax.evaluation import evaluate as evaluation  # pylint: disable=g-import-not-at-top
from twostream_jax.data import data_spec  # pylint: disable=g-import-not-at-top
from twostream_jax.train import restore
from twostream_jax.train import sharding
from twostream_jax.train import steps as train_steps


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--model', default='small')
  parser.add_argument('--modality', default='flow', choices=['rgb', 'flow'])
  parser.add_argument('--num_videos', type=int, default=4)
  parser.add_argument('--size', type=int, default=112, help='crop size')
  parser.add_argument('--batch', type=int, default=250, help='global eval batch (views)')
  parser.add_argument('--frames', type=int, default=25)
  parser.add_argument('--crops', type=int, default=10)
  args = parser.parse_args()

  with tempfile.TemporaryDirectory() as tmp:
    record_fixtures.write_tiny_dataset(tmp, num_classes=2, train_per_class=1,
                                       test_per_class=(args.num_videos + 1) // 2, num_frames=30,
                                       height=256, width=340)
    c = default_config()
    c.data.data_dirs = tmp
    c.data.modality = args.modality
    c.data.crop_size = args.size
    c.model.name = args.model
    c.train.eval_batch_size = args.batch
    mesh = sharding.create_mesh()
    state, _ = restore.init_state(c, data_spec.DataSpec.from_config(c.data), mesh)
    _, eval_fn = train_steps.make_jitted_steps(c, mesh, state)
    channels = 3 if args.modality == 'rgb' else 2 * c.data.num_flow_fields
    print(f'{jax.devices()[0].platform}: {args.model}, {args.modality}, {args.size}x{args.size}x'
          f'{channels}, batch {args.batch}, {args.frames}x{args.crops} views per video')

    x = jax.device_put(np.random.default_rng(0).normal(
        size=(args.batch, args.size, args.size, channels)).astype(np.float32),
                       sharding.data_sharded(mesh))
    jax.block_until_ready(eval_fn(state, {'inputs': x}))  # compile
    repeats = 3
    start = time.perf_counter()
    for _ in range(repeats):
      jax.block_until_ready(eval_fn(state, {'inputs': x}))
    forward = repeats * args.batch / (time.perf_counter() - start)
    print(f'forward: {forward:.1f} views/s')

    kwargs = dict(split='test1', num_frames=args.frames, num_crops=args.crops)
    evaluation.score_split(c, state, eval_fn, mesh, max_videos=1, **kwargs)  # warm-up
    start = time.perf_counter()
    scores = evaluation.score_split(c, state, eval_fn, mesh, **kwargs)
    seconds = time.perf_counter() - start
    views = scores.num_videos * args.frames * args.crops
    print(f'protocol: {scores.num_videos} videos, {views} views in {seconds:.1f} s: '
          f'{views / seconds:.1f} views/s, {scores.num_videos / seconds:.3f} videos/s '
          f'({views / seconds / forward:.2f} of forward)')


if __name__ == '__main__':
  main()
