"""RGB <-> LAB (Kornia's conventions), and the colourfulness of RGB photos.

Kornia's LAB: L in 0..100, a about -86..98, b about -108..95 over sRGB.
"""

import torch

# Kornia's sRGB (D65) -> XYZ matrix with each row divided by the white point: X/Xn, Y/Yn, Z/Zn in one product.
_RGB_TO_XYZN = torch.tensor([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                             [0.019334, 0.119193, 0.950227]]) / torch.tensor([[0.95047], [1.0], [1.08883]])
# (fx, fy, fz) -> (L, a, b) = (116 fy - 16, 500 (fx - fy), 200 (fy - fz)), also one product.
_F_TO_LAB = torch.tensor([[0.0, 116.0, 0.0], [500.0, -500.0, 0.0], [0.0, 200.0, -200.0]])
_L_OFFSET = torch.tensor([[-16.0], [0.0], [0.0]])
_EPSILON = 0.008856


def _srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    return torch.where(rgb > 0.04045, ((rgb + 0.055).clamp(min=0.0) / 1.055).pow(2.4), rgb / 12.92)


_LINEAR_LUT = _srgb_to_linear(torch.arange(256, dtype=torch.float64) / 255.0).float()  # per uint8 value


def _linear(rgb: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """sRGB -> linear RGB. uint8 through a 256-entry table (numpy's take on the CPU, where torch indexing is
    3x slower): 256 pows instead of one per pixel."""
    if rgb.dtype != torch.uint8:
        return _srgb_to_linear(rgb.to(dtype))
    if rgb.device.type == "cpu":  # not OpenCV's LUT: importing OpenCV cost `colorize` 0.1 s of its start
        return torch.from_numpy(_LINEAR_LUT.numpy().take(rgb.numpy())).to(dtype)
    return _LINEAR_LUT.to(device=rgb.device, dtype=dtype)[rgb.int()]


def _lab_f(xyz: torch.Tensor) -> torch.Tensor:
    """CIELAB's f of X/Xn, Y/Yn, Z/Zn (a new tensor; xyz is overwritten): the cube root above epsilon, the linear
    segment below."""
    above = xyz > _EPSILON
    f = xyz.clamp_min(_EPSILON).log_().mul_(1.0 / 3.0).exp_()  # cube root: exp(log / 3), cheaper than pow
    return torch.where(above, f, xyz.mul_(7.787).add_(4.0 / 29.0), out=f)


def rgb_to_lab(rgb: torch.Tensor, impl: str = "fast") -> torch.Tensor:
    """(*, 3, H, W) RGB, uint8 or float in [0, 1] -> (*, 3, H, W) float LAB.

    impl="fast" (default) equals Kornia's rgb_to_lab within 1e-3 (tests/test_perf_equivalence.py) in less time
    on the CPU (BENCHMARKS.md): a table for the sRGB curve, two matrix products, few passes over memory;
    impl="kornia" calls Kornia itself.
    """
    if impl == "kornia" or rgb.requires_grad:  # the fast path works in place, which autograd cannot follow
        import kornia.color  # here, not at the top: importing it slows the start of `colorize` and the app

        return kornia.color.rgb_to_lab(rgb.float() / 255.0 if rgb.dtype == torch.uint8 else rgb)
    if impl != "fast":
        raise ValueError(f"rgb_to_lab impl={impl!r}: expected fast or kornia")
    dtype = torch.float64 if rgb.dtype == torch.float64 else torch.float32  # half precision computes in float32
    *lead, channels, h, w = rgb.shape
    if channels != 3:
        raise ValueError(f"rgb_to_lab: expected (*, 3, H, W), got {tuple(rgb.shape)}")
    xyz = torch.matmul(_RGB_TO_XYZN.to(rgb.device, dtype), _linear(rgb, dtype).reshape(-1, 3, h * w))
    lab = torch.matmul(_F_TO_LAB.to(rgb.device, dtype), _lab_f(xyz)).add_(_L_OFFSET.to(rgb.device, dtype))
    return lab.view(*lead, 3, h, w).to(rgb.dtype if rgb.is_floating_point() else torch.float32)


def rgb_to_lightness(rgb: torch.Tensor) -> torch.Tensor:
    """(*, 3, H, W) uint8 RGB -> (*, 1, H, W) float32 L: `rgb_to_lab(rgb)[..., :1, :, :]` (within 1e-3) without
    computing a and b, for photos whose colour is thrown away (colorize's input: a third of the work)."""
    *lead, channels, h, w = rgb.shape
    if rgb.dtype != torch.uint8 or channels != 3:
        raise ValueError(f"rgb_to_lightness: expected uint8 (*, 3, H, W), got {rgb.dtype} {tuple(rgb.shape)}")
    y = torch.matmul(_RGB_TO_XYZN[1:2].to(rgb.device), _linear(rgb, torch.float32).reshape(-1, 3, h * w))
    return _lab_f(y).mul_(116.0).sub_(16.0).view(*lead, 1, h, w)  # the L row of _F_TO_LAB and _L_OFFSET


# The inverse products: (L, a, b) -> (fx, fy, fz), and X/Xn, Y/Yn, Z/Zn -> linear sRGB (white point folded in).
_LAB_TO_F = torch.linalg.inv(_F_TO_LAB.double()).float()
_XYZN_TO_RGB = torch.linalg.inv(_RGB_TO_XYZN.double()).float()
_KAPPA = 0.2068966  # Kornia's threshold on f (6/29)
_LINEAR_EPSILON = 0.0031308


def lab_to_rgb(lab: torch.Tensor, impl: str = "fast") -> torch.Tensor:
    """(*, 3, H, W) LAB -> RGB float in [0, 1] (clipped: out-of-gamut ab is possible).

    impl="fast" (default) equals Kornia's lab_to_rgb(clip=True) within 1e-3 (tests/test_perf_equivalence.py) in
    less time on the CPU (BENCHMARKS.md), as `rgb_to_lab` does: two matrix products and in-place passes;
    impl="kornia" calls Kornia itself.
    """
    if impl == "kornia" or lab.requires_grad:  # the fast path works in place, which autograd cannot follow
        import kornia.color  # as in rgb_to_lab

        return kornia.color.lab_to_rgb(lab, clip=True)
    if impl != "fast":
        raise ValueError(f"lab_to_rgb impl={impl!r}: expected fast or kornia")
    *lead, channels, h, w = lab.shape
    if channels != 3:
        raise ValueError(f"lab_to_rgb: expected (*, 3, H, W), got {tuple(lab.shape)}")
    dtype = torch.float64 if lab.dtype == torch.float64 else torch.float32
    device = lab.device
    # Few new full-size tensors: on the CPU each costs more (fresh memory) than an in-place pass. Autocast off: the
    # matrix products stay in full precision under bf16-mixed.
    with torch.autocast(device.type, enabled=False):
        to_f = _LAB_TO_F.to(device, dtype)
        f = torch.matmul(to_f, lab.to(dtype).reshape(-1, 3, h * w)).sub_(to_f @ _L_OFFSET.to(device, dtype))
        f[:, 2].clamp_(min=0.0)  # as Kornia: fz below 0 (Z < 0) is out of range
        above = f > _KAPPA
        xyz = f.square().mul_(f)
        xyz = torch.where(above, xyz, f.sub_(4.0 / 29.0).div_(7.787), out=xyz)
        rgb = torch.matmul(_XYZN_TO_RGB.to(device, dtype), xyz)
        above = torch.gt(rgb, _LINEAR_EPSILON, out=above)
        # the sRGB curve: x^(1 / 2.4) as exp(log(x) / 2.4), cheaper than pow
        curve = rgb.clamp(min=_LINEAR_EPSILON).log_().div_(2.4).exp_().mul_(1.055).sub_(0.055)
        rgb = torch.where(above, curve, rgb.mul_(12.92), out=curve).clamp_(0.0, 1.0)
    return rgb.view(*lead, 3, h, w).to(lab.dtype if lab.is_floating_point() else torch.float32)


def merge_l_ab(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) and ab (B, 2, H, W) -> RGB in [0, 1]."""
    return lab_to_rgb(torch.cat([L, ab.to(L.dtype)], dim=1))


def colourfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Hasler and Suesstrunk (2003) colourfulness per image, RGB in [0, 1] -> (B,), on the 0..255 scale."""
    r, g, b = (rgb * 255.0).unbind(dim=1)
    rg, yb = r - g, 0.5 * (r + g) - b
    std = torch.sqrt(rg.flatten(1).var(1, unbiased=False) + yb.flatten(1).var(1, unbiased=False))
    mean = torch.sqrt(rg.flatten(1).mean(1) ** 2 + yb.flatten(1).mean(1) ** 2)
    return std + 0.3 * mean
