"""How many videos an eval batch holds (train.view_outputs.videos_per_batch)."""

from twostream_jax.train import sharding
from twostream_jax.train import view_outputs


def test_a_batch_holds_the_view_budget_but_no_more_videos_than_there_are():
  mesh = sharding.create_mesh()  # The tests' two virtual CPU devices.
  n = mesh.devices.size
  assert n == 2
  # The budget alone: 256 views of 1 view a video -> 256 videos; 250 views a video -> one per device.
  assert view_outputs.videos_per_batch(256, 1, mesh) == 256
  assert view_outputs.videos_per_batch(256, 250, mesh) == n
  # A short split is not padded to the budget: its videos, rounded up to the devices.
  assert view_outputs.videos_per_batch(256, 1, mesh, num_videos=5) == 6
  assert view_outputs.videos_per_batch(256, 1, mesh, num_videos=1) == n
  assert view_outputs.videos_per_batch(256, 1, mesh, num_videos=1000) == 256
  assert view_outputs.videos_per_batch(256, 250, mesh, num_videos=7) == n
