"""Imported once by the dataset writer's fork server, so that every worker forked from it starts
with TensorFlow and the shard writer loaded (see `dataset_writer._worker_context`).

Importing it is meant for the fork server only: it ties the importing process to its parent (the
main process) with `worker_processes.exit_with`, so that a killed main process takes the fork
server along at once, and silences TensorFlow's start-up banners
(`worker_processes.quiet_tensorflow_logs`) before importing TensorFlow: this import is the one that
would print them, once per fork server, and then in no worker.
"""

import os

from twostream_jax.prep import worker_processes

worker_processes.exit_with(os.getppid(), parent_death_signal=False)
worker_processes.quiet_tensorflow_logs()

# pylint: disable=g-import-not-at-top,g-bad-import-order,unused-import,wrong-import-position
import tensorflow
from twostream_jax.prep import shard_writer
