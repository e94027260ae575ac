"""Every configuration key of twostream_jax, with its default and what it means.

The other configs start from this one and change what they need. Not meant to be run as it is (it
names no data set); run e.g.:

  python -m twostream_jax.main --config configs/temporal.py --workdir runs/temporal \
      --config.data.data_dirs=data/ucf101_records

Override any key on the command line with `--config.<section>.<key>=value`; an unknown key fails.

Resuming (the same command again, same workdir) refuses a config that differs from the
checkpoint's in a key that changes the data stream or the model, naming each; the keys that may
differ (and are logged) are twostream_jax/train/restore.py's RESUMABLE_KEYS, the one list of them.

Experiments (configs/demo.py, configs/ablations.py) take these keys without `mode` and add a
top-level `experiment` key and their own section; the runs they train get plain training configs.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Returns the locked default config."""
  c = ml_collections.ConfigDict()
  # 'train' | 'eval' | 'train_eval' (train, then evaluate the final state).
  c.mode = 'train'
  c.seed = 0  # The one seed: parameters, dropout, data order and augmentation derive from it.

  # ---- Data (twostream_jax.data.data_spec validates it; the pipelines read it) ----
  d = c.data = ml_collections.ConfigDict()
  # Records folders written by tools/make_tfrecords.py, comma-separated. One for a single-task run;
  # two or more for multi-task training (one head per data set, e.g. UCF101 and HMDB51).
  d.data_dirs = ''
  d.train_split = 'train1'  # Official split to train on: train1 | train2 | train3.
  d.eval_split = 'test1'  # Split evaluated with the paper's protocol (mode=eval / train_eval).
  # Split for periodic clip-level validation during training: 'heldout' (the default) is a
  # deterministic `heldout_fraction` of the training split's videos, held out by whole groups and
  # excluded from training; '' disables validation; a test split (e.g. 'test1') works but invites
  # early stopping on the test set, and logs a warning.
  d.val_split = 'heldout'
  d.heldout_fraction = 0.05  # Part of the training videos held out when val_split='heldout'.
  d.modality = 'rgb'  # 'rgb': one frame (spatial stream); 'flow': L stacked flow fields (temporal).
  d.num_flow_fields = 10  # L: flow fields per stack, giving 2L input channels (modality='flow').
  d.flow_mean_subtraction = 'per_field'  # 'per_field' (the paper's camera-motion compensation) | 'none'.
  # 'optical_flow': every field sampled at the same pixel (the paper's best) | 'trajectory': field k
  # sampled along the pixel's motion trajectory (data/trajectory_stacking.py), before cropping.
  d.stacking = 'optical_flow'
  # 'forward': L fields flow(i -> i+1) from tau | 'bidirectional' (the paper, section 3.1): L/2
  # backward fields flow(i+1 -> i) ending at tau, then L/2 forward fields from tau (L even); needs
  # records built with make_tfrecords --backward_flow.
  d.flow_direction = 'forward'
  d.crop_size = 224  # Side of the square network input, pixels.
  d.multiscale_crop = False  # TSN corner cropping (crop sizes 1, .875, .75, .66 of the short side).
  d.random_flip = True  # Horizontal flip in training (negates flow x).
  d.color_jitter = 0.0  # RGB colour-jitter strength (0 disables; e.g. 0.2).
  d.normalization = 'imagenet'  # RGB: 'imagenet' (torchvision weights' mean/std) | 'unit' ([0, 1]).
  d.frames_per_video = 1  # Training examples drawn from each video per pass over the data.
  d.class_balanced = False  # Draw each example's class uniformly (the paper), else uniform over videos.
  d.mix_weights = ''  # Multi-task: comma-separated sampling weights per data set ('' = by size).
  d.test_num_frames = 25  # Paper protocol: frames / flow stacks per video, equally spaced.
  d.test_num_crops = 10  # Paper protocol: 4 corners + centre and their flips (10), or 1 (centre).
  d.val_num_frames = 1  # Clip-level validation: frames per held-out video.
  d.val_num_crops = 1  # Clip-level validation: crops per frame (1 = centre).
  d.val_max_videos = 0  # Validate on at most this many held-out videos (0: all).
  # Parallel decoding calls of the tf.data pipeline, train and eval (0: tf.data AUTOTUNE).
  d.decode_parallelism = 0
  # A record whose JPEGs are damaged: False stops training with one line naming the file, record,
  # video and frame; True logs it once and trains on without it (evaluation always stops).
  d.skip_corrupt_records = False

  # ---- Model (twostream_jax.models) ----
  m = c.model = ml_collections.ConfigDict()
  m.name = 'resnet18'  # tiny | small | cnn_m_2048 | cnn_m_2048_temporal | resnet18..152 | vgg16 | vgg16_bn
  m.dropout_rate = 0.5
  m.dtype = 'float32'  # Compute dtype: 'float32' or 'bfloat16' (parameters stay float32).
  # Converted torchvision weights (tools/convert_torchvision.py --output_dir); '' trains from scratch.
  m.init_from = ''
  # Allow init_from weights that leave some variables unloaded (another head size, a first conv
  # with another channel count): they train from scratch and are listed at WARNING. False refuses
  # such a partial load, listing every variable not loaded and why.
  m.init_from_partial = False

  # ---- Optimisation ----
  o = c.optim = ml_collections.ConfigDict()
  o.learning_rate = 1e-2
  # Piecewise-constant schedule: the rate is multiplied by `decay_factor` at each boundary step.
  o.decay_boundaries_steps = '50000,70000'
  o.decay_factor = 0.1
  o.warmup_steps = 0  # Linear warm-up from 0 over this many steps (0: none).
  o.momentum = 0.9
  o.nesterov = False
  o.weight_decay = 5e-4  # L2 on weights (not on biases or batch-norm parameters).
  o.train_last_layer_only = False  # Fine-tune only the classifier head(s).

  # ---- Training loop ----
  t = c.train = ml_collections.ConfigDict()
  t.global_batch_size = 256  # Across all devices and hosts (the paper: 256).
  t.num_train_steps = 80000
  t.log_every_steps = 50
  t.checkpoint_every_steps = 1000
  t.keep_checkpoints = 3
  t.val_every_steps = 1000  # Clip-level validation period (0 disables).
  # Views per global eval batch: a batch holds eval_batch_size // (num_frames x num_crops) videos (at
  # least one per device), whose views are made on the device (the paper's protocol: 250 a video).
  t.eval_batch_size = 256
  # Convolutions on a CPU backend (python -m twostream_jax.main only; set before JAX starts):
  # 'eigen' (XLA's own; the faster train step for resnet18 in bench/bench_models.py --variants) |
  # 'ynnpack' (this jaxlib's default). No effect on GPU/TPU; an XLA_FLAGS that sets
  # xla_cpu_experimental_ynn_fusion_type itself wins.
  t.cpu_convolutions = 'eigen'

  # ---- Evaluation (mode=eval / train_eval; the paper's protocol uses data.test_num_*) ----
  e = c.eval = ml_collections.ConfigDict()
  e.stream_name = ''  # Name in score files and tables ('': 'spatial' for rgb, 'temporal' for flow).
  # Also score the training split (fewer views), so that fusion is fitted on training scores.
  e.score_train_split = True
  e.train_num_frames = 5  # Views per training video for those scores: frames ...
  e.train_num_crops = 1  # ... x crops (1 = centre).
  e.max_videos = 0  # Evaluate at most this many videos per split (0: all; >0 for quick checks).
  # Save the scores so far this often (eval/<split>/scores.partial.npz; 0: after every batch): a
  # rerun of a killed evaluation scores only the videos they lack (docs/evaluation.md).
  e.partial_scores_every_seconds = 60.0
  # Multi-task runs: the data set evaluated and the head that scores it, by name (its metadata name,
  # e.g. 'hmdb51') or index in data.data_dirs; '' = the first. Results of a run with several data
  # sets go to eval/<name>/<split> and name the data set.
  e.dataset = ''

  c.lock()
  return c
