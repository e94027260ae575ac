"""The TV-L1 building blocks against their OpenCV counterparts and their defining formulas."""

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from twostream_jax.flow import tvl1_ops

# Bilinear/bicubic results on 0..255 data agree with cv2 to float32 rounding (a few ulps of 255).
_INTERP_ATOL = 2e-3

# Jitted once per shape: eager dispatch would compile every primitive separately (slower).
_warp = jax.jit(tvl1_ops.warp_bicubic)
_median = jax.jit(tvl1_ops.median_filter, static_argnums=1)
_resize = jax.jit(tvl1_ops.resize_linear, static_argnums=(1, 2))


def _random_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
  return (rng.random((h, w)) * 255).astype(np.float32)


@pytest.mark.parametrize('h,w', [(72, 96), (48, 64), (37, 50), (17, 21)])
def test_pyramid_shapes_match_cv2_resize(h, w):
  shapes = tvl1_ops.pyramid_shapes(h, w, num_scales=5, scale_step=0.8)
  img = np.zeros((h, w), np.float32)
  assert shapes[0] == (h, w)
  for shape in shapes[1:]:
    img = cv2.resize(img, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
    assert img.shape == shape
  # OpenCV drops a level whose side would be under 16 px, and never builds more than asked.
  assert len(shapes) <= 5
  if len(shapes) < 5:
    last_h, last_w = shapes[-1]
    assert min(round(last_h * 0.8), round(last_w * 0.8)) < 16
  assert all(min(s) >= 16 for s in shapes[1:])


def test_resize_linear_matches_cv2_down_and_up():
  rng = np.random.default_rng(0)
  for h, w in [(72, 96), (29, 39)]:
    img = _random_image(rng, h, w)
    down_ref = cv2.resize(img, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
    down = _resize(jnp.asarray(img), down_ref.shape, (1 / 0.8, 1 / 0.8))
    np.testing.assert_allclose(np.asarray(down), down_ref, rtol=0, atol=_INTERP_ATOL)
    # Flow upscaling: cv2.resize to an explicit size, whose scale is the size ratio.
    up_ref = cv2.resize(down_ref, (w, h), interpolation=cv2.INTER_LINEAR)
    up = _resize(jnp.asarray(down_ref), (h, w))
    np.testing.assert_allclose(np.asarray(up), up_ref, rtol=0, atol=_INTERP_ATOL)


def test_resize_linear_broadcasts_over_leading_axes():
  rng = np.random.default_rng(1)
  stack = np.stack([_random_image(rng, 20, 30) for _ in range(3)])
  out = np.asarray(_resize(jnp.asarray(stack), (16, 24)))
  for k in range(3):
    np.testing.assert_allclose(out[k], cv2.resize(stack[k], (24, 16)), atol=_INTERP_ATOL)


def test_warp_bicubic_matches_cv2_remap_with_zero_border():
  rng = np.random.default_rng(2)
  h, w = 30, 41
  images = np.stack([_random_image(rng, h, w), rng.normal(size=(h, w)).astype(np.float32)])
  # Displacements up to ~10 px push many taps and some whole points outside the image.
  flow_x = rng.normal(scale=4.0, size=(h, w)).astype(np.float32)
  flow_y = rng.normal(scale=4.0, size=(h, w)).astype(np.float32)
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
  out = np.asarray(_warp(jnp.asarray(images), jnp.asarray(flow_x), jnp.asarray(flow_y)))
  for k in range(2):
    ref = cv2.remap(images[k], xs + flow_x, ys + flow_y, cv2.INTER_CUBIC,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    np.testing.assert_allclose(out[k], ref, rtol=0, atol=_INTERP_ATOL)
  # A point far outside samples only zeros.
  far = np.asarray(_warp(jnp.asarray(images), jnp.full((h, w), 1e6), jnp.zeros((h, w))))
  assert np.all(far == 0)


def test_warp_bicubic_with_integer_flow_is_a_shift():
  rng = np.random.default_rng(3)
  images = np.stack([_random_image(rng, 30, 41) for _ in range(2)])
  out = np.asarray(_warp(jnp.asarray(images), jnp.full((30, 41), 2.0),
                         jnp.full((30, 41), -1.0)))
  # At integer positions the cubic kernel is (0, 1, 0, 0): out[y, x] = img[y - 1, x + 2].
  np.testing.assert_allclose(out[:, 1:, :-2], images[:, :-1, 2:], atol=1e-4)
  assert np.all(out[:, 0] == 0) and np.all(out[:, :, -2:] == 0)


@pytest.mark.parametrize('ksize,h,w', [(5, 23, 31), (5, 5, 6), (3, 23, 31)])
def test_median_filter_equals_cv2_median_blur(ksize, h, w):
  rng = np.random.default_rng(h * w + ksize)
  # Rounded values make ties common, the case a sloppy network would get wrong.
  img = np.round(rng.normal(size=(h, w)) * 3).astype(np.float32)
  out = np.asarray(_median(jnp.asarray(img), ksize))
  np.testing.assert_array_equal(out, cv2.medianBlur(img, ksize))


def test_median_filter_rejects_even_window():
  with pytest.raises(ValueError, match='odd ksize'):
    tvl1_ops.median_filter(jnp.zeros((8, 8)), 4)


@pytest.mark.parametrize('n', [2, 5, 13, 25])
def test_select_rank_returns_every_order_statistic(n):
  rng = np.random.default_rng(n)
  values = rng.normal(size=(n, 7)).astype(np.float32)
  expected = np.sort(values, axis=0)
  # Every rank for small n; for n = 25 (the 5x5 median) the extremes, the median and one more.
  ranks = list(range(n)) if n < 25 else [0, 7, 12, 24]
  select = jax.jit(lambda vs: [tvl1_ops.select_rank(vs, r) for r in ranks])
  got = select([jnp.asarray(v) for v in values])
  np.testing.assert_array_equal(np.stack(got), expected[ranks])


def test_centered_gradient_follows_opencv_border_rule():
  rng = np.random.default_rng(4)
  img = rng.normal(size=(6, 7)).astype(np.float32)
  dx, dy = (np.asarray(a) for a in tvl1_ops.centered_gradient(jnp.asarray(img)))
  h, w = img.shape
  for y in range(h):
    for x in range(w):
      # Central difference inside, one-sided (still halved) on the borders.
      want_dx = 0.5 * (img[y, min(x + 1, w - 1)] - img[y, max(x - 1, 0)])
      want_dy = 0.5 * (img[min(y + 1, h - 1), x] - img[max(y - 1, 0), x])
      assert dx[y, x] == pytest.approx(want_dx, abs=1e-6)
      assert dy[y, x] == pytest.approx(want_dy, abs=1e-6)


def test_forward_gradient_and_divergence_are_negative_adjoints():
  rng = np.random.default_rng(5)
  h, w = 9, 11
  u = rng.normal(size=(h, w)).astype(np.float32)
  ux, uy = (np.asarray(a) for a in tvl1_ops.forward_gradient(jnp.asarray(u)))
  np.testing.assert_allclose(ux[:, :-1], u[:, 1:] - u[:, :-1], atol=1e-6)
  np.testing.assert_allclose(uy[:-1], u[1:] - u[:-1], atol=1e-6)
  assert np.all(ux[:, -1] == 0) and np.all(uy[-1] == 0)
  # Dual fields as the TV-L1 updates leave them: p1 is 0 on the last column, p2 on the last row.
  p1 = rng.normal(size=(h, w)).astype(np.float32)
  p2 = rng.normal(size=(h, w)).astype(np.float32)
  p1[:, -1] = 0
  p2[-1] = 0
  div = np.asarray(tvl1_ops.divergence(jnp.asarray(p1), jnp.asarray(p2)))
  lhs = float(np.sum(ux.astype(np.float64) * p1 + uy.astype(np.float64) * p2))
  rhs = -float(np.sum(u.astype(np.float64) * div))
  assert lhs == pytest.approx(rhs, rel=1e-5, abs=1e-4)
  # First row / column use zero outside the image, as OpenCV's divergence does.
  assert div[0, 0] == pytest.approx(p1[0, 0] + p2[0, 0], abs=1e-6)
  assert div[0, 3] == pytest.approx(p1[0, 3] - p1[0, 2] + p2[0, 3], abs=1e-6)
  assert div[4, 0] == pytest.approx(p1[4, 0] + p2[4, 0] - p2[3, 0], abs=1e-6)


def test_primal_dual_step_follows_opencv_per_pixel_rules():
  rng = np.random.default_rng(6)
  h, w = 7, 9
  u = rng.normal(size=(2, h, w)).astype(np.float32)
  p = rng.normal(size=(2, 2, h, w)).astype(np.float32) * 0.3
  g = rng.normal(size=(2, h, w)).astype(np.float32) * 3
  g[:, 0, 0] = 0  # an untextured pixel: no data step there
  grad = (g[0] ** 2 + g[1] ** 2).astype(np.float32)
  rho_c = rng.normal(size=(h, w)).astype(np.float32) * 2
  l_t, theta, taut = 0.15 * 0.3, 0.3, 0.25 / 0.3
  new_u, new_p, error = (np.asarray(a) for a in jax.jit(
      lambda *a: tvl1_ops.primal_dual_step(*a, l_t=l_t, theta=theta, taut=taut))(
          u, p, g, grad, rho_c))
  # estimateV, written per pixel as in tvl1flow.cpp.
  v = np.empty_like(u)
  for y in range(h):
    for x in range(w):
      rho = rho_c[y, x] + g[0, y, x] * u[0, y, x] + g[1, y, x] * u[1, y, x]
      if rho < -l_t * grad[y, x]:
        d = l_t * g[:, y, x]
      elif rho > l_t * grad[y, x]:
        d = -l_t * g[:, y, x]
      elif grad[y, x] > np.finfo(np.float32).eps:
        d = -rho / grad[y, x] * g[:, y, x]
      else:
        d = np.zeros(2)
      v[:, y, x] = u[:, y, x] + d
  # divergence with zero outside, then estimateU.
  padded = np.pad(p, ((0, 0), (0, 0), (1, 0), (1, 0)))
  div = (p[:, 0] - padded[:, 0, 1:, :-1]) + (p[:, 1] - padded[:, 1, :-1, 1:])
  want_u = v + theta * div
  np.testing.assert_allclose(new_u, want_u, atol=1e-5)
  assert error == pytest.approx(float(np.sum((want_u - u) ** 2)), rel=1e-5)
  # forwardGradient and estimateDualVariables.
  ux = np.zeros_like(want_u)
  uy = np.zeros_like(want_u)
  ux[:, :, :-1] = want_u[:, :, 1:] - want_u[:, :, :-1]
  uy[:, :-1] = want_u[:, 1:] - want_u[:, :-1]
  norm = 1 + taut * np.hypot(ux, uy)
  want_p = (p + taut * np.stack([ux, uy], axis=1)) / norm[:, None]
  np.testing.assert_allclose(new_p, want_p, atol=1e-5)
