"""The demo: the main job on bundled synthetic action videos, end to end on a CPU in minutes.

  python -m twostream_jax.main --config configs/demo.py [--workdir runs/demo]

An experiment (`experiment='demo'`: twostream_jax/experiments/demo.py). Generates the synthetic
videos (128x96, 24 frames, 60 training and 10 test videos per class; 6 classes = 3 colour patterns
x {up, down}; camera panning on), builds their records with DIS flow, trains the spatial stream
(one RGB frame, 800 steps) and the temporal stream (L=5 flow fields, mean flow subtraction, 300
steps) from scratch, and a temporal stream without mean subtraction for comparison, evaluates each
on the test split (5 frames x 10 crops per video), fuses spatial and temporal (averaging, fitted
weights, linear SVM) and writes results.json / results.md in the workdir (default runs/demo). An
appearance-only classifier can reach at most 50% here and a motion-only one 33.3%; both 100%.
The training keys are configs/small.py's (without `mode`): the demo's temporal stream as a plain
training config.
"""

import ml_collections

from twostream_jax.config_loading import config_beside


def get_config():
  c = config_beside(__file__, 'small.py')  # the streams' training keys
  c.unlock()
  del c['mode']  # The experiment trains and evaluates each stream (train_eval).
  c.experiment = 'demo'

  # ---- The synthetic set and the streams' budget (shared with configs/ablations.py) ----
  dm = c.demo = ml_collections.ConfigDict()
  dm.data_root = 'data/synthetic'  # Videos go to <data_root>/videos, records to <data_root>/records.
  dm.camera_pan = True  # Global camera motion, so that mean flow subtraction matters.
  dm.video_height = 96
  dm.video_width = 128
  dm.video_frames = 24
  dm.train_per_class = 60
  dm.test_per_class = 10
  # tvl1 | farneback | dis (DIS: fast enough for the demo's minutes; TV-L1 is far slower on a CPU).
  dm.flow_algorithm = 'dis'
  dm.num_workers = 2  # make_tfrecords worker processes.
  dm.spatial_steps = 800
  dm.temporal_steps = 300
  dm.spatial_learning_rate = 0.05
  dm.temporal_learning_rate = 0.05
  dm.compare_mean_subtraction = True  # Also train a temporal stream without mean flow subtraction.
  dm.records_only = False  # Stop after the videos and their records (the data preparation stage).

  # ---- What the demo's streams do otherwise than configs/small.py ----
  c.data.val_split = ''  # No validation: the demo is timed to the minute.
  c.train.val_every_steps = 0
  c.lock()
  return c
