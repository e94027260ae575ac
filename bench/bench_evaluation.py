"""Evaluation under the paper's protocol vs the model's plain forward throughput, in one run.

    python bench/bench_evaluation.py [--model small --modality flow --num_videos 4 --size 112]

Writes the records of bench_input_pipeline.py (340x256 frames, 40 per video) to a temporary folder,
then measures on the first `--num_videos` test videos:
  * forward: the jitted eval step on device-resident random inputs of the eval batch shape
    (views/s: the model alone);
  * protocol: `evaluation.evaluate.score_split` over the split with 25 frames x 10 crops per video (views/s
    and videos/s: reading + decoding + cropping + the same jitted step + per-video averaging).
The ratio protocol/forward says how much of the model's speed the evaluation keeps. Prints one line
per measurement.
"""

import argparse
import os
import tempfile
import time

import jax
import numpy as np

from twostream_jax import config_loading
from twostream_jax.data import data_spec
from twostream_jax.data import eval_dataset
from twostream_jax.data import pipeline_ops
from twostream_jax.evaluation import evaluate
from twostream_jax.train import restore
from twostream_jax.train import sharding
from twostream_jax.train import steps as train_steps
from twostream_jax.train import view_outputs

import bench_input_pipeline  # pylint: disable=wrong-import-order  (bench/: the script's folder)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _score(spec, predict, mesh, *, num_videos: int, frames: int, crops: int, batch_views: int):
  """`evaluate.score_split` over the first `num_videos` test videos, as the protocol runs it."""
  views = frames * crops
  dataset = eval_dataset.create_eval_dataset(
      spec, split='test1', num_frames=frames, num_crops=crops, max_videos=num_videos,
      global_batch_size=view_outputs.videos_per_batch(batch_views, views, mesh))
  batches = view_outputs.device_batches(pipeline_ops.numpy_batches(dataset), mesh)
  metadata = spec.metadatas[0]
  return evaluate.score_split(predict, batches, video_ids=metadata.video_ids('test1')[:num_videos],
                              class_names=metadata.class_names, split='test1', views=views,
                              stream='bench', show_progress=False)


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
    bench_input_pipeline.write_records(tmp)
    c = config_loading.load_config_file(os.path.join(REPO_ROOT, 'configs', 'default.py'))
    c.data.data_dirs = tmp
    c.data.modality = args.modality
    c.data.crop_size = args.size
    c.model.name = args.model
    c.train.eval_batch_size = args.batch
    mesh = sharding.create_mesh()
    spec = data_spec.DataSpec.from_config(c.data)
    state, _ = restore.init_state(c, spec, mesh)
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

    predict = view_outputs.view_predictor(state, eval_fn, mesh)
    kwargs = dict(frames=args.frames, crops=args.crops, batch_views=args.batch)
    _score(spec, predict, mesh, num_videos=1, **kwargs)  # warm-up
    start = time.perf_counter()
    scores = _score(spec, predict, mesh, num_videos=args.num_videos, **kwargs)
    seconds = time.perf_counter() - start
    views = scores.num_videos * args.frames * args.crops
    print(f'protocol: {scores.num_videos} videos, {views} views in {seconds:.1f} s: '
          f'{views / seconds:.1f} views/s, {scores.num_videos / seconds:.3f} videos/s '
          f'({views / seconds / forward:.2f} of forward)')


if __name__ == '__main__':
  main()
