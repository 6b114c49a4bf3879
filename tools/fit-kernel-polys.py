#!/usr/bin/env python3
"""Fits the polynomial coefficients used by the WGSL kernels (needs numpy and mpmath; not run by CI).

  rope.wgsl       sincos(): sin r = r + r^3 S(r^2), cos r = 1 - r^2/2 + r^4 C(r^2) on |r| <= 0.8 (> pi/4),
                  and pi/2 split into pieces of 8 significant bits for the Cody-Waite reduction
  pointwise.wgsl  exp_hl(): e^r = 1 + r + r^2 P(r) on |r| <= 0.36 (> ln2/2)
                  gelu():   R(z) = erfc(z) e^(z^2) as a polynomial in t = 1/(1 + z/2) on z in [0, 10]

Each fit is minimax in relative error (Lawson's iteratively reweighted least squares on a dense Chebyshev grid),
then evaluated with f32 Horner steps to report the error the shader will see.
"""
import mpmath as mp
import numpy as np

mp.mp.dps = 40
f32 = np.float32


def lawson(xs, fx, degree, weight, iters=300):
    A = np.stack([xs ** k for k in range(degree + 1)], 1)
    lw = np.ones_like(xs) / len(xs)
    for _ in range(iters):
        sw = np.sqrt(lw)
        c, *_ = np.linalg.lstsq(A * (sw / weight)[:, None], fx * sw / weight, rcond=None)
        e = np.abs(A @ c - fx) / weight
        lw = lw * e
        lw /= lw.sum()
    return c.astype(np.float32), (np.abs(A @ c - fx) / weight).max()


def horner32(c, x):
    r = np.full_like(x, c[-1], dtype=np.float32)
    for k in c[-2::-1]:
        r = (r * x + k).astype(np.float32)
    return r


def cheb(lo, hi, n=4001):
    return (np.cos(np.linspace(0, np.pi, n)) * 0.5 * (hi - lo) + 0.5 * (hi + lo))


def show(name, c, fit):
    print(f'{name}: minimax rel. error {fit:.3e}; coefficients (x^0 first): {", ".join(repr(float(v)) for v in c)}')


# sin / cos on [-0.8, 0.8], as polynomials in s = r^2
r = cheb(-0.8, 0.8)
r = r[np.abs(r) > 1e-3]
s = r * r
cS, e = lawson(s, (np.sin(r) - r) / r ** 3, 2, np.abs(np.sin(r) / r ** 3))
show('sin S(s)', cS, e)
cC, e = lawson(s, (np.cos(r) - 1 + s / 2) / s ** 2, 2, np.cos(r) / s ** 2)
show('cos C(s)', cC, e)
rr = np.linspace(-0.8, 0.8, 100001).astype(np.float32)
ss = (rr * rr).astype(np.float32)
sn = rr + rr * ss * horner32(cS, ss)
cs = 1 - f32(0.5) * ss + ss * ss * horner32(cC, ss)
print(f'  f32 evaluation: |sin err| {np.abs(sn - np.sin(rr.astype(np.float64))).max():.3e}, |cos err| {np.abs(cs - np.cos(rr.astype(np.float64))).max():.3e}')

# pi/2 in pieces of 8 significant bits (the last one the f32 rounding of the rest)
rest = mp.pi / 2
pieces = []
for _ in range(3):
    q = mp.mpf(2) ** (mp.floor(mp.log(abs(rest), 2)) - 7)
    pieces.append(mp.floor(rest / q) * q)
    rest -= pieces[-1]
pieces.append(rest)
print('pi/2 pieces:', ', '.join(repr(float(p)) for p in pieces))

# exp on [-0.36, 0.36]
r = cheb(-0.36, 0.36)
r = r[np.abs(r) > 1e-4]
cP, e = lawson(r, (np.exp(r) - 1 - r) / r ** 2, 4, np.exp(r) / r ** 2)
show('exp P(r)', cP, e)

# erfc(z) e^(z^2) in t = 1/(1 + z/2), z in [0, 10]
t = cheb(1 / 6, 1)
z = 2 / t - 2
R = np.array([float(mp.erfc(mp.mpf(v)) * mp.exp(mp.mpf(v) ** 2)) for v in z])
cR, e = lawson(t, R, 9, R)
show('erfc R(t)', cR, e)
tt = np.linspace(1 / 6, 1, 4001).astype(np.float32)
Rt = np.array([float(mp.erfc(mp.mpf(v)) * mp.exp(mp.mpf(v) ** 2)) for v in 2 / tt.astype(np.float64) - 2])
print(f'  f32 evaluation: max rel. error {(np.abs(horner32(cR, tt) - Rt) / Rt).max():.3e}')
