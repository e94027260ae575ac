"""Reference outputs of random-weight torchvision models, for the conversion tests.

Run in a subprocess (torch must never be imported in the pytest process, which imports TensorFlow):

    python tests/torch_reference.py --archs=resnet18,vgg16 --out_dir=/tmp/ref --size=64

For each architecture it builds torchvision's model with a fixed seed, gives every BatchNorm
non-trivial affine parameters and running statistics (so that a mapping mistake shows), and writes

    <arch>_state/     the state dict as one .npy per tensor plus keys.json (their order), so that
                      the test reads it without torch, memory-mapped (VGG-16's is 550 MB)
    <arch>.pth        the same state dict via torch.save (only for --pth_archs)
    <arch>_ref.npz    x [B, H, W, 3] (NHWC), logits_eval [B, 1000] and, for --train_archs,
                      logits_train [B, 1000] (one train-mode forward), running/<bn key> = the
                      running statistics after it, cotangent [B, 1000] (random) and grad/<key> =
                      the gradient of sum(logits_train * cotangent) for every parameter
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch
import torchvision


def _calibrate_batch_norm(model: torch.nn.Module, x: torch.Tensor) -> None:
  """Random affine BN parameters and running statistics of a real forward pass, then perturbed.

  Running variances are only ever enlarged (x U(1, 1.5)): eval-mode activations then shrink a little
  rather than grow through 50 layers, which keeps torch's own float32 logits within ~5e-6 of
  float64 and so makes a 1e-4 comparison meaningful.
  """
  bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
  with torch.no_grad():
    for bn in bns:
      bn.weight.uniform_(0.7, 1.3)
      bn.bias.normal_(0.0, 0.1)
      bn.momentum = 1.0  # running stats := this batch's statistics.
    model.train()
    model(x)
    for bn in bns:
      bn.momentum = 0.1
      bn.running_mean.add_(torch.randn_like(bn.running_mean) * 0.05)
      bn.running_var.mul_(torch.empty_like(bn.running_var).uniform_(1.0, 1.5))


def save_state_dict_npy(state: dict[str, np.ndarray], directory: str) -> None:
  """Writes a state dict as <directory>/<i>.npy plus keys.json listing the keys in order."""
  os.makedirs(directory, exist_ok=True)
  for i, value in enumerate(state.values()):
    np.save(os.path.join(directory, f'{i}.npy'), value)
  with open(os.path.join(directory, 'keys.json'), 'w') as f:
    json.dump(list(state), f)


def make_reference(arch: str, out_dir: str, *, seed: int, batch: int, size: int,
                   save_pth: bool, train: bool) -> None:
  """Writes the three files described in the module docstring for one architecture."""
  torch.manual_seed(seed)
  model = torchvision.models.get_model(arch, weights=None, num_classes=1000)
  calib = torch.randn(max(batch, 8), 3, size, size)
  _calibrate_batch_norm(model, calib)
  x = torch.randn(batch, 3, size, size)

  model.eval()
  with torch.no_grad():
    logits_eval = model(x).numpy()
  state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
  save_state_dict_npy(state, os.path.join(out_dir, f'{arch}_state'))
  if save_pth:
    torch.save(model.state_dict(), os.path.join(out_dir, f'{arch}.pth'))
  if not train:
    np.savez(os.path.join(out_dir, f'{arch}_ref.npz'), x=x.numpy().transpose(0, 2, 3, 1),
             logits_eval=logits_eval)
    return

  # Dropout would make the train-mode logits random; BN is what the train-mode check is about.
  for m in model.modules():
    if isinstance(m, torch.nn.Dropout):
      m.p = 0.0
  model.train()
  logits = model(x)
  cotangent = torch.randn_like(logits)
  (logits * cotangent).sum().backward()
  running = {f'running/{k}': v.detach().numpy() for k, v in model.state_dict().items()
             if k.endswith(('running_mean', 'running_var'))}
  grads = {f'grad/{k}': p.grad.numpy() for k, p in model.named_parameters()}
  np.savez(os.path.join(out_dir, f'{arch}_ref.npz'),
           x=x.numpy().transpose(0, 2, 3, 1), logits_eval=logits_eval,
           logits_train=logits.detach().numpy(), cotangent=cotangent.numpy(), **running, **grads)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--archs', required=True, help='comma-separated torchvision names')
  parser.add_argument('--pth_archs', default='', help='archs whose .pth is also written')
  parser.add_argument('--train_archs', default='', help='archs also run one train-mode step')
  parser.add_argument('--out_dir', required=True)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--batch', type=int, default=2)
  parser.add_argument('--size', type=int, default=64)
  args = parser.parse_args()
  torch.set_num_threads(max(1, os.cpu_count() or 1))
  os.makedirs(args.out_dir, exist_ok=True)
  pth_archs = set(filter(None, args.pth_archs.split(',')))
  train_archs = set(filter(None, args.train_archs.split(',')))
  for arch in args.archs.split(','):
    make_reference(arch, args.out_dir, seed=args.seed, batch=args.batch, size=args.size,
                   save_pth=arch in pth_archs, train=arch in train_archs)


if __name__ == '__main__':
  main()
