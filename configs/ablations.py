"""The paper's ablations (Table 1) on the synthetic action videos, each row with the demo's budget:

  python -m twostream_jax.main --config configs/ablations.py [--workdir runs/ablations]
  python -m twostream_jax.main --config configs/ablations.py --config.ablations.quick=True  # minutes

Temporal: L = 1 / 5 / 10 flow fields, mean flow subtraction on / off, trajectory stacking,
bi-directional flow; spatial: from scratch, pretrained on a second synthetic set and fine-tuned,
pretrained with the last layer only. Reuses the demo's videos and records (demo.data_root) when
present. Writes ablations.json and ablations.md in the workdir (twostream_jax/experiments/
ablations.py). Same data, model and protocol as configs/demo.py: 5 frames x 10 crops per test video.
"""

from twostream_jax.config_loading import config_beside


def get_config():
  c = config_beside(__file__, 'demo.py')
  c.mode = 'ablations'
  c.demo.compare_mean_subtraction = False  # The ablation rows cover it.
  return c
