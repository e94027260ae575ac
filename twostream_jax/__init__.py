"""twostream_jax: Two-Stream ConvNets for action recognition in JAX/Flax.

Simonyan & Zisserman, "Two-Stream Convolutional Networks for Action Recognition in Videos",
NIPS 2014 (arXiv 1406.2199). See README.md and DESIGN notes for the layout.

This package's JAX core (models, steps, fusion, flow maths) never imports TensorFlow; only the input
pipeline and the dataset tools do.
"""

__version__ = '0.1.0'
