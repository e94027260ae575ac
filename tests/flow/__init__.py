"""Tests of twostream_jax.flow."""
