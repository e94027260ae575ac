"""Tests of twostream_jax.data."""
