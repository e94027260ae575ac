"""Temporal stream trained multi-task on UCF101 and HMDB51: one softmax head per data set, each head's
loss over its own data set's examples, losses summed. The paper: 81.5% on UCF101 split 1 (and 55.4%
on HMDB51 split 1). Evaluation reports the data set `eval.dataset` names, with its own head (default
the first); the HMDB51 head of the same run:

  python -m twostream_jax.main --config configs/temporal_multitask.py --workdir runs/temporal_mt \
      --config.data.data_dirs=data/ucf101_records,data/hmdb51_records --config.mode=eval \
      --config.eval.dataset=hmdb51

  python -m twostream_jax.main --config configs/temporal_multitask.py --workdir runs/temporal_mt \
      --config.data.data_dirs=data/ucf101_records,data/hmdb51_records
"""

from twostream_jax.config_loading import config_beside


def get_config():
  c = config_beside(__file__, 'temporal.py')
  c.data.mix_weights = ''  # By data-set size.
  return c
