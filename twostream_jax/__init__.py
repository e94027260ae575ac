"""twostream_jax: Two-Stream ConvNets for action recognition in JAX/Flax.

Simonyan & Zisserman, "Two-Stream Convolutional Networks for Action Recognition in Videos",
NIPS 2014 (arXiv 1406.2199). The layout and its dependency rule are in docs/ARCHITECTURE.md:

  prep/        videos or rawframes -> records (offline; training never imports it)
  flow/        optical flow: OpenCV algorithms, TV-L1 in JAX, flow pictures
  data/        record schema, data spec, record index and reader, sampling, the tf.data pipelines
  models/      networks, torchvision conversion, pretrained loading
  train/       state, optimizer, jitted steps, sharding, checkpoints, the loop, protocol evaluation
  evaluation/  per-video scores, metrics, score files, fusion, result tables
  inference/   prediction from video files (restored streams, flow on the fly, fusion)
  experiments/ the demo and the paper's ablations on synthetic videos
  main, fuse, predict  entry points (`python -m twostream_jax.<name>`)
The JAX core (models, flow/tvl1_*, train state and steps, fusion) never imports TensorFlow.
"""

__version__ = '0.1.0'
