"""twostream_jax: Two-Stream ConvNets for action recognition in JAX/Flax.

Simonyan & Zisserman, "Two-Stream Convolutional Networks for Action Recognition in Videos",
NIPS 2014 (arXiv 1406.2199). The layout and its dependency rule are in docs/ARCHITECTURE.md:

  prep/        videos or rawframes -> records (offline; training never imports it)
  flow/        optical flow: OpenCV algorithms, TV-L1 in JAX, flow pictures
  data/        record schema, record index and reader, metadata, sampling, the tf.data pipeline
  models/      networks, torchvision conversion, pretrained loading
  train/       state, optimizer, jitted steps, sharding, checkpoints, metric writers, the loop
  evaluation/  the paper's test protocol, metrics, score files, fusion, result tables
  main, fuse, demo, predict  entry points (`python -m twostream_jax.<name>`)

The JAX core (models, flow/tvl1_*, train state and steps, fusion) never imports TensorFlow; only
the input pipeline and the dataset preparation do.
"""

__version__ = '0.1.0'
