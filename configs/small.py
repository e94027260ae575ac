"""The demo's small streams on your own records: a small net, native-size frames, minutes on a CPU.

Build records at the videos' own size (no resizing; frames must be at least crop_size = 96 pixels
on each side), then train and evaluate the temporal stream (L=5 flow fields, 300 steps):

  python tools/make_tfrecords.py --videos_dir=my_videos --output_dir=data/mine --short_side=0 \
      --flow_algorithm=dis
  python -m twostream_jax.main --config configs/small.py --workdir runs/small_temporal \
      --config.data.data_dirs=data/mine

and the spatial stream (one RGB frame, 800 steps, as the demo trains it):

  python -m twostream_jax.main --config configs/small.py --workdir runs/small_spatial \
      --config.data.data_dirs=data/mine --config.data.modality=rgb \
      --config.train.num_train_steps=800 --config.optim.decay_boundaries_steps=600

These are the values `mode=demo` uses for its streams (configs/demo.py plus the demo.* steps and
learning rates, a decay by 10x at 3/4 of the steps); tests/test_small_config.py checks that they stay
equal. Fuse the two streams' scores with `python -m twostream_jax.fuse` (README).
"""

from twostream_jax.config_loading import config_beside


def get_config():
  c = config_beside(__file__, 'demo.py')
  d = c.demo
  c.mode = 'train_eval'  # Train, then evaluate with the protocol (and score train1 for fusion).
  c.data.modality = 'flow'
  c.train.num_train_steps = d.temporal_steps  # 300
  c.optim.learning_rate = d.temporal_learning_rate  # 0.05
  c.optim.decay_boundaries_steps = str(int(d.temporal_steps * 0.75))  # '225'
  # Validation on held-out training videos (the demo, timed to the minute, skips it).
  c.data.val_split = 'heldout'
  c.train.val_every_steps = 100
  return c
