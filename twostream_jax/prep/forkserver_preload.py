"""Imported once by the dataset writer's fork server, so that every worker forked from it starts
with TensorFlow and the shard writer loaded (see `writer_pool.worker_pool`).

Importing it is meant for the fork server only. First it sets TensorFlow's C++ log level
(`worker_processes.quiet_tensorflow_logs`) before importing TensorFlow: this import is the one that
would print the start-up banners, once per fork server, and the workers inherit the setting with
the rest of the environment. It ties the fork server to its parent (the main process) with
`worker_processes.exit_with`, so that a killed main process takes the fork server along at once,
and makes the fork server's regular exit (`dataset_writer` stops it after its pool) skip
TensorFlow's unloading, which the main process would otherwise wait for.
"""

import os

from twostream_jax.prep import worker_processes

worker_processes.quiet_tensorflow_logs()
worker_processes.exit_with(os.getppid(), parent_death_signal=False)

# pylint: disable=g-import-not-at-top,g-bad-import-order,unused-import,wrong-import-position
import tensorflow
from twostream_jax.prep import shard_writer

# Registered after TensorFlow's own exit handlers, so it runs first (atexit is last in, first out).
worker_processes.exit_at_once_on_exit()
