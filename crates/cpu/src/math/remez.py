#!/usr/bin/env python3
"""Derives the minimax polynomial coefficients in `coeffs.rs` (run: `python3 remez.py > coeffs.rs`).

Needs only mpmath. Each fit is a weighted Remez exchange in high precision: it minimises
max |w(t) (P(t) - g(t))| over [a, b], where g is the part of the function the polynomial has to
supply (the leading terms of each series are written out exactly in the Rust code) and w turns
that into the relative error of the final result. The coefficients are then rounded to the target
precision one at a time, lowest degree first, refitting the higher ones around the rounded ones
(except on intervals around 0, where they are rounded together), and the error of the rounded
polynomial is measured again on a dense grid, so the printed error is that of the constants
actually used (arithmetic rounding in the emitted code comes on top).

`python3 remez.py NAME[:DEGREE] ...` fits only the named polynomials (to try other degrees).
"""

import struct
import sys
from functools import lru_cache

from mpmath import atanh, cos, expm1, log, lu_solve, matrix, mp, mpf, pi, sin, sqrt

mp.dps = 50
TINY = mpf(10) ** -25


def polyval(c, t):
    acc = mpf(0)
    for ci in reversed(c):
        acc = acc * t + ci
    return acc


def next_f32(f, direction):
    bits = struct.unpack("I", struct.pack("f", f))[0]
    if f == 0:
        return struct.unpack("f", struct.pack("I", 1))[0] * direction
    bits += 1 if (f > 0) == (direction > 0) else -1
    return struct.unpack("f", struct.pack("I", bits))[0]


def round_to(x, prec):
    """Rounds an mpf to the nearest f32 (prec == 32) or f64 (prec == 64)."""
    d = float(x)  # correctly rounded to f64
    if prec == 64:
        return mpf(d)
    f = struct.unpack("f", struct.pack("f", d))[0]
    # f64 -> f32 can double-round; pick the nearest of the neighbours against the exact value.
    best = min((f, next_f32(f, 1), next_f32(f, -1)), key=lambda c: abs(mpf(c) - x))
    return mpf(best)


def golden_max(f, lo, hi, steps=50):
    gr = (sqrt(5) - 1) / 2
    x1, x2 = hi - gr * (hi - lo), lo + gr * (hi - lo)
    f1, f2 = f(x1), f(x2)
    for _ in range(steps):
        if f1 > f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - gr * (hi - lo)
            f1 = f(x1)
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + gr * (hi - lo)
            f2 = f(x2)
    return max([(f(lo), lo), (f1, x1), (f2, x2), (f(hi), hi)])[1]


def remez(g, w, a, b, powers, grid, iters=30):
    """Fits sum c_i t^powers[i] to g, minimising the weighted error; returns the c_i."""
    n = len(powers)
    m = n + 1
    # Chebyshev roots as the first reference (interior points, so a zero weight at an end does not
    # bite), shifted off the midpoint where the weights of the odd fits vanish.
    ref = [(a + b) / 2 - (b - a) / 2 * cos(pi * (2 * k + 1) / (2 * m)) + (b - a) * mpf("1e-3") for k in range(m)]
    c, last = None, None
    for _ in range(iters):
        A, rhs = matrix(m, m), matrix(m, 1)
        for j, t in enumerate(ref):
            for i, p in enumerate(powers):
                A[j, i] = t**p
            A[j, n] = (-1) ** j / w(t)
            rhs[j] = g(t)
        sol = lu_solve(A, rhs)
        c = [sol[i] for i in range(n)]

        def err(t, c=c):
            return w(t) * (sum(ci * t**p for ci, p in zip(c, powers)) - g(t))

        vals = [err(t) for t in grid]
        # Runs of one sign; the largest |err| of each run is an extremum.
        runs = []
        for k, v in enumerate(vals):
            s = v >= 0
            if runs and runs[-1][0] == s:
                if abs(v) > abs(vals[runs[-1][1]]):
                    runs[-1][1] = k
            else:
                runs.append([s, k])
        while len(runs) > m:
            if abs(vals[runs[0][1]]) < abs(vals[runs[-1][1]]):
                runs.pop(0)
            else:
                runs.pop()
        if len(runs) < m:
            break
        ref = [golden_max(lambda t: abs(err(t)), grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]) for _, k in runs]
        emax = max(abs(err(t)) for t in ref)
        if last is not None and abs(emax - last) < emax * mpf("1e-4"):
            break
        last = emax
    return c


def nz(t):
    return t if t != 0 else TINY


def fit(name, g, w, a, b, deg, prec, comment):
    g, w = lru_cache(maxsize=None)(g), lru_cache(maxsize=None)(w)
    grid = [(a + b) / 2 - (b - a) / 2 * cos(pi * k / 799) for k in range(800)]
    if a < 0 < b:
        # t^k..t^deg (k > 0) is not a Chebyshev system on an interval around 0, so refits around
        # rounded low coefficients would be ill-posed: round the single fit instead.
        cr = [round_to(c, prec) for c in remez(g, w, a, b, list(range(deg + 1)), grid)]
    else:
        cr = []
        for k in range(deg + 1):
            fixed = list(cr)

            def gk(t, fixed=fixed):
                return g(t) - polyval(fixed, t)

            c = remez(gk, w, a, b, list(range(k, deg + 1)), grid)
            cr.append(round_to(c[0], prec))
    dense = [a + (b - a) * k / 19999 for k in range(20000)]
    e = max(abs(w(t) * (polyval(cr, t) - g(t))) for t in dense)
    bits = -log(e, 2) if e > 0 else mpf("inf")
    print()
    print(f"/// {comment}")
    print(f"/// Degree {deg} on [{mp.nstr(a, 8)}, {mp.nstr(b, 8)}]; relative error of the result due to the")
    print(f"/// rounded coefficients: {mp.nstr(e, 3)} (2^-{mp.nstr(bits, 4)}).")
    ty = "f32" if prec == 32 else "f64"
    vals = [f32_repr(float(ci)) if prec == 32 else repr(float(ci)) for ci in cr]
    line = f"pub(super) const {name}: [{ty}; {len(cr)}] = [{', '.join(vals)}];"
    if len(line) <= 120:  # as rustfmt lays it out (max_width = 120)
        print(line)
    else:
        print(f"pub(super) const {name}: [{ty}; {len(cr)}] = [")
        for v in vals:
            print(f"    {v},")
        print("];")
    sys.stdout.flush()
    return cr


def f32_repr(v):
    """The shortest decimal that rounds back to the same f32 (so the Rust literal is exact)."""
    for digits in range(6, 12):
        s = f"{v:.{digits}e}"
        if struct.unpack("f", struct.pack("f", float(s)))[0] == v:
            return s
    return repr(v)


HALF_LN2 = log(2) / 2 * mpf("1.0002")
# log's reduction keeps m in [sqrt(1/2), sqrt(2)), so f = m - 1 and s = f / (2 + f) satisfy s^2 <= Z_MAX.
Z_MAX = ((sqrt(2) - 1) / (sqrt(2) + 1)) ** 2 * mpf("1.001")
# sin and cos reduce by multiples of pi/2 to |r| <= pi/4 (a little more: q is rounded in f32).
ZR_MAX = (pi / 4 * mpf("1.001")) ** 2


def g_expm1(r):
    r = nz(r)
    return (expm1(r) - r - r**2 / 2) / r**3


def w_expm1(r):
    r = nz(r)
    return r**3 / expm1(r)


def atanh_ratio(z):
    s = sqrt(nz(z))
    return 2 * atanh(s) / s  # = log1p(f) / s, about 2


def g_atanh(z):
    return (atanh_ratio(z) - 2) / nz(z)


def w_atanh(z):
    # The polynomial's error is multiplied by s * z while the result is about 2 s.
    return nz(z) / 2


def g_atanh_tail(z):
    return (atanh_ratio(z) - 2 - 2 * nz(z) / 3) / nz(z) ** 2


def w_atanh_tail(z):
    return nz(z) ** 2 / 2


def g_sin(z):
    z = nz(z)
    r = sqrt(z)
    return (sin(r) - r) / (z * r)


def w_sin(z):
    z = nz(z)
    r = sqrt(z)
    return z * r / sin(r)


def g_cos(z):
    z = nz(z)
    return (cos(sqrt(z)) - 1 + z / 2) / z**2


def w_cos(z):
    z = nz(z)
    return z**2 / cos(sqrt(z))


FITS = {
    "EXPM1_F32": (g_expm1, w_expm1, -HALF_LN2, HALF_LN2, 4, 32,
                  "expm1(r) = r + r^2/2 + r^3 P(r) for |r| <= ln2/2 (exp is 1 + expm1)."),
    "LOG_F32": (g_atanh, w_atanh, mpf(0), Z_MAX, 2, 32,
                "log1p(f) = 2 atanh(s) = 2s + s z P(z), s = f / (2 + f), z = s^2 <= 0.0295."),
    "SIN_F32": (g_sin, w_sin, mpf(0), ZR_MAX, 2, 32, "sin(r) = r + r z P(z), z = r^2, |r| <= pi/4."),
    "COS_F32": (g_cos, w_cos, mpf(0), ZR_MAX, 2, 32, "cos(r) = 1 - z/2 + z^2 P(z), z = r^2, |r| <= pi/4."),
    "EXPM1_F64": (g_expm1, w_expm1, -HALF_LN2, HALF_LN2, 9, 64,
                  "expm1(r) = r + r^2/2 + r^3 P(r) for |r| <= ln2/2 (exp is 1 + expm1)."),
    "LOG_F64": (g_atanh, w_atanh, mpf(0), Z_MAX, 6, 64,
                "log1p(f) = 2 atanh(s) = 2s + s z P(z), s = f / (2 + f), z = s^2 <= 0.0295."),
    "LOG_TAIL_F64": (g_atanh_tail, w_atanh_tail, mpf(0), Z_MAX, 6, 64,
                     "log1p(f) = 2s + 2s^3/3 + s z^2 P(z), for the double-double log of pow."),
    "SIN_F64": (g_sin, w_sin, mpf(0), ZR_MAX, 5, 64, "sin(r) = r + r z P(z), z = r^2, |r| <= pi/4."),
    "COS_F64": (g_cos, w_cos, mpf(0), ZR_MAX, 5, 64, "cos(r) = 1 - z/2 + z^2 P(z), z = r^2, |r| <= pi/4."),
}


def round_bits(x, bits):
    """Rounds x to `bits` significant bits (so small integer multiples of it are exact)."""
    e = mp.floor(log(abs(x), 2))
    q = mpf(2) ** (e - bits + 1)
    return mp.nint(x / q) * q


def split(name, x, prec, parts, first_bits=None):
    out, rest = [], x
    for k in range(parts):
        c = round_bits(rest, first_bits) if (k == 0 and first_bits) else round_to(rest, prec)
        out.append(c)
        rest -= c
    ty = "f32" if prec == 32 else "f64"
    vals = ", ".join(f32_repr(float(c)) if prec == 32 else repr(float(c)) for c in out)
    print(f"pub(super) const {name}: [{ty}; {parts}] = [{vals}];")


def splits():
    print("/// ln2 as hi + lo (`exp`'s and `log`'s reductions).")
    split("LN2_F32", log(2), 32, 2)
    split("LN2_F64", log(2), 64, 2)
    print("/// ln2 as hi + lo with hi of 42 bits, so e·hi is exact for |e| < 2^11 (pow's double-double log).")
    split("LN2_POW_F64", log(2), 64, 2, first_bits=42)
    print("/// π/2 in three parts (Cody-Waite reduction of `sin` and `cos`).")
    split("PIO2_F32", pi / 2, 32, 3)
    split("PIO2_F64", pi / 2, 64, 3)
    print("/// 2/3 as hi + lo.")
    split("TWO_THIRDS_F64", mpf(2) / 3, 64, 2)


def main():
    args = sys.argv[1:]
    if args == ["splits"]:
        splits()
        return
    if not args:
        print("//! Minimax polynomial coefficients for the inline math, generated by `python3 remez.py > coeffs.rs`")
        print("//! (do not edit by hand; each comment gives the fit's form, interval and error).")
        print()
        print("// The splits below are deliberately the nearest floats to ln2, π/2 and so on.")
        print("#![allow(clippy::approx_constant)]")
        print()
        splits()
        args = list(FITS)
    for arg in args:
        name, _, deg = arg.partition(":")
        g, w, a, b, d, prec, comment = FITS[name]
        fit(name, g, w, a, b, int(deg) if deg else d, prec, comment)


if __name__ == "__main__":
    main()
