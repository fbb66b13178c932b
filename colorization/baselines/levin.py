"""Levin, Lischinski and Weiss (2004), "Colorization using optimization".

Every unhinted pixel's colour is required to be the weighted average of its
3x3 neighbours' colours, with weights that are large between pixels of
similar intensity:

    u_r = sum_s w_rs u_s,   w_rs ∝ exp(-(Y_r - Y_s)^2 / (2 σ_r^2)),   sum_s w_rs = 1

Hinted pixels are fixed to their hint. This is the sparse linear system
(I - W) u = 0 on the unhinted pixels, solved once per image with one sparse LU
factorisation shared by the a and b channels.

σ_r follows the authors' reference code (getColorExact.m) rather than the
loose wording of the paper: 2 σ_r^2 = 0.6 · var_r, with var_r the variance of
the intensities in the 3x3 window (centre included), floored twice:
  * so that the most similar neighbour gets a relative weight of at least 0.01
    (otherwise a pixel unlike all its neighbours, e.g. noise, would get weights
    that all underflow to 0 and a 0/0 row);
  * by a tiny constant, so flat windows (var_r = 0) do not divide by zero.
With 2 σ_r^2 = 2 var_r (the paper read literally) a sharp edge's window has so
large a variance that colour leaks noticeably across it; 0.6 is what the
authors ship.

Intensities are L / 100, i.e. in 0..1 as in the reference code, so that the
absolute floor has the scale it was chosen for.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from colorization.transforms.encoding import NEIGHBOURS_3X3, levin_weights


def _affinity(L: np.ndarray) -> sp.csr_matrix:
    """Row-normalised 3x3 affinity matrix W (N x N, N = H*W) of lightness L (H, W), 0..100: the weights of
    `levin_weights` (shared with input=levin's approximate solve), as a sparse matrix."""
    H, W = L.shape
    w = levin_weights(torch.from_numpy(L)[None, None])[:, 0, 0].numpy()  # (8, H, W), 0 outside the photo
    valid = w > 0
    # Sparse triplets: row = pixel, column = its neighbour, for the pairs with a weight.
    idx = np.arange(H * W).reshape(H, W)
    idxp = np.pad(idx, 1)  # padded entries are never used (their weight is 0)
    cols = np.stack([idxp[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W] for dy, dx in NEIGHBOURS_3X3])
    rows = np.broadcast_to(idx, cols.shape)
    return sp.csr_matrix((w[valid], (rows[valid], cols[valid])), shape=(H * W, H * W))


def levin_colorize(L: np.ndarray, hint_ab: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Colorize one image with Levin et al.'s optimisation.

    Args:
        L: (H, W) lightness, 0..100 (Kornia / CIE LAB L).
        hint_ab: (H, W, 2) channel-last a/b values; only read where `mask` is True.
        mask: (H, W) bool, True where a hint is given.

    Returns:
        (H, W, 2) float64 ab. Hinted pixels equal their hint exactly. With no
        hints at all there is nothing to propagate and zeros (gray) are returned.
    """
    L = np.asarray(L, dtype=np.float64)
    hint_ab = np.asarray(hint_ab, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    H, W = L.shape
    if hint_ab.shape != (H, W, 2) or mask.shape != (H, W):
        raise ValueError(
            f"expected L (H, W), hint_ab (H, W, 2), mask (H, W); got {L.shape}, {hint_ab.shape}, {mask.shape}"
        )

    out = np.zeros((H, W, 2))
    if not mask.any():
        return out
    out[mask] = hint_ab[mask]
    if mask.all():
        return out

    known = mask.ravel()
    unknown = ~known
    Wm = _affinity(L)
    # (I - W) u = 0 on unknown rows, with known u moved to the right-hand side:
    #   (I - W_uu) u_u = W_uk u_k.
    # Every weight is > 0 (see the floors above), so the 8-connected graph is
    # connected, and with at least one hint I - W_uu is nonsingular.
    W_uu = Wm[unknown][:, unknown]
    W_uk = Wm[unknown][:, known]
    A = (sp.identity(W_uu.shape[0], format="csc") - W_uu).tocsc()
    rhs = W_uk @ hint_ab.reshape(-1, 2)[known]
    out.reshape(-1, 2)[unknown] = spla.splu(A).solve(rhs)  # one LU for a and b
    return out


def levin(L: torch.Tensor, hint_ab: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Batched Levin colorization with the model's call shape.

    L (B, 1, H, W) in 0..100, hint_ab (B, 2, H, W), mask (B, 1, H, W) in {0, 1}
    (> 0.5 counts as hinted). Returns ab (B, 2, H, W) on L's device and dtype.
    Each image is solved independently on the CPU in float64; an image with no
    hints gets ab = 0. Not differentiable (a baseline, not a training target).
    """
    L_np = L.detach().to("cpu", torch.float64).numpy()
    ab_np = hint_ab.detach().to("cpu", torch.float64).numpy()
    m_np = mask.detach().cpu().numpy() > 0.5
    B, _, H, W = L_np.shape
    out = np.zeros((B, 2, H, W))
    for i in range(B):
        out[i] = levin_colorize(L_np[i, 0], ab_np[i].transpose(1, 2, 0), m_np[i, 0]).transpose(2, 0, 1)
    return torch.from_numpy(out).to(device=L.device, dtype=L.dtype)
