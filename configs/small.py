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

configs/demo.py builds its streams on this config (without held-out validation);
tests/test_small_config.py checks that they stay equal. Fuse the two streams' scores with
`python -m twostream_jax.fuse` (docs/evaluation.md).
"""

from twostream_jax.config_loading import config_beside


def get_config():
  c = config_beside(__file__, 'default.py')
  c.mode = 'train_eval'  # Train, then evaluate with the protocol (and score train1 for fusion).
  c.data.modality = 'flow'
  c.data.crop_size = 96
  c.data.num_flow_fields = 5
  c.data.normalization = 'unit'
  c.data.class_balanced = False
  c.data.test_num_frames = 5
  c.data.test_num_crops = 10
  c.model.name = 'small'
  c.model.dropout_rate = 0.2
  c.optim.learning_rate = 0.05
  c.optim.decay_boundaries_steps = '225'  # A decay by optim.decay_factor at 3/4 of the steps.
  c.optim.weight_decay = 1e-4
  c.optim.warmup_steps = 20
  c.train.num_train_steps = 300
  c.train.global_batch_size = 32
  c.train.eval_batch_size = 100
  c.train.log_every_steps = 50
  c.train.checkpoint_every_steps = 100
  c.eval.train_num_frames = 3
  c.eval.train_num_crops = 1
  # Validation on held-out training videos (the demo, timed to the minute, skips it).
  c.data.val_split = 'heldout'
  c.train.val_every_steps = 100
  return c
