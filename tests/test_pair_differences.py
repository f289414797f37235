"""The cancellation-free pair differences of the HRU nonlinearities (``nl_pair``, issue #19) against exact oracles.

For z = zm +- dl the kernel returns S = g'(a) + g'(b), Dg = g'(a) - g'(b), Dv = g(a) - g(b) and the trapezoid
remainder R = S dl - Dv, formed from dl itself.  The oracles are independent of the kernel's formulas: 60-digit
``decimal`` arithmetic of the plain definitions (log cosh, sqrt) and exact rational arithmetic (the poly soft clip,
whose knee 15/8 is a binary fraction).  float32 must keep a few ulp where the direct float32 difference loses
every digit; float64 must be exact to round-off.
"""

from __future__ import annotations

from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np
import pytest

from hamsim.hamiltonians.kernels import POLY_KNEE, nl_pair, nl_slope, nl_value

getcontext().prec = 60


def _dec_tanh(z: Decimal) -> Decimal:
    e = (2 * z).exp()
    return (e - 1) / (e + 1)


def _dec_logcosh(z: Decimal) -> Decimal:
    return ((z.exp() + (-z).exp()) / 2).ln()


def _dec_sqrt_slope(z: Decimal) -> Decimal:
    return z / (1 + z * z).sqrt()


def _dec_sqrt_value(z: Decimal) -> Decimal:
    return (1 + z * z).sqrt() - 1


KNEE = Fraction(POLY_KNEE)  # 15/8 exactly


def _clip(z: Fraction) -> Fraction:
    return min(max(z / KNEE, Fraction(-1)), Fraction(1))


def _poly_slope(z: Fraction) -> Fraction:
    s = _clip(z)
    return s * (Fraction(15, 8) - s * s * (Fraction(5, 4) - s * s * Fraction(3, 8)))


def _poly_value(z: Fraction) -> Fraction:
    if abs(z) >= KNEE:
        return KNEE * Fraction(11, 16) + (abs(z) - KNEE)
    s2 = (z / KNEE) ** 2
    return KNEE * s2 * (15 - s2 * (5 - s2)) / 16


def oracle(kind: int, zm: float, dl: float) -> tuple[float, float, float, float]:
    """(S, Dg, Dv, R) of the pair at the *represented* zm and dl, exactly (to 60 digits)."""
    if kind == 3:
        zf, df = Fraction(zm), Fraction(dl)
        a, b = zf + df, zf - df
        ga, gb = _poly_slope(a), _poly_slope(b)
        dv = _poly_value(a) - _poly_value(b)
        return float(ga + gb), float(ga - gb), float(dv), float((ga + gb) * df - dv)
    zd, dd = Decimal(zm), Decimal(dl)  # exact binary values
    a, b = zd + dd, zd - dd
    slope, value = (_dec_tanh, _dec_logcosh) if kind == 1 else (_dec_sqrt_slope, _dec_sqrt_value)
    ga, gb = slope(a), slope(b)
    dv = value(a) - value(b)
    return float(ga + gb), float(ga - gb), float(dv), float((ga + gb) * dd - dv)


ZM = [-5.0, -2.3, -0.7, -0.01, 0.0, 1e-3, 0.4, 1.1, 1.8, 1.875, 1.9, 3.7, 6.0]
DL = [1e-7, 3e-5, 1e-3, 2e-2, 0.099, 0.1, 0.13, 0.4, 0.9]


def _check(kind: int, dtype: type, rtol: float) -> list[str]:
    bad = []
    one = dtype(1.0)
    for zm in ZM:
        for dl in DL:
            for sign in (1.0, -1.0):
                z32, d32 = dtype(zm), dtype(sign * dl)
                got = nl_pair(kind, z32, d32, one)
                want = oracle(kind, float(z32), float(d32))
                # R is O(dl^3) and vanishes where g^(3) does (zm = 0); where it is formed as S dl - Dv it carries
                # float64's rounding of S dl (an absolute 1e-15 |S dl|, for float32 data too)
                dl3 = abs(float(d32)) ** 3
                for name, g, w, floor, atol in zip("S Dg Dv R".split(), got, want,
                                                   (1e-30, abs(float(d32)), abs(float(d32)), dl3),
                                                   (0.0, 0.0, 0.0, 1e-15 * abs(want[0] * float(d32)))):
                    if not abs(float(g) - w) <= rtol * (abs(w) + 1e-3 * floor) + atol:
                        bad.append(f"kind {kind} zm {zm} dl {float(d32):.3g}: {name} {float(g):.9g} vs {w:.9g}")
    return bad


@pytest.mark.parametrize("kind", [1, 2, 3])
def test_pair_differences_in_float32_keep_their_digits(kind: int) -> None:
    """Every quantity to 2e-5 relative in float32 (R, an O(dl^3) remainder, included), at every dl from 1e-7 up."""
    assert _check(kind, np.float32, 2e-5) == []


@pytest.mark.parametrize("kind", [1, 2, 3])
def test_pair_differences_in_float64_are_exact_to_round_off(kind: int) -> None:
    assert _check(kind, np.float64, 1e-9) == []


def test_the_direct_float32_difference_is_what_failed() -> None:
    """The oracle can tell: the plain float32 differences g'(a) - g'(b) and g(a) - g(b) at dl = 1e-8 are off by
    more than half their size (the rounding of zm = 0.7 is 6e-8), the pair's are exact to 1e-5."""
    one = np.float32(1.0)
    zm, dl = np.float32(0.7), np.float32(1e-8)
    a, b = zm + dl, zm - dl
    direct = float(nl_slope(1, a, one) - nl_slope(1, b, one))
    _, want, _, _ = oracle(1, float(zm), float(dl))
    assert abs(direct - want) > 0.5 * abs(want)
    _, got, _, _ = nl_pair(1, zm, dl, one)
    assert abs(float(got) - want) < 1e-5 * abs(want)
    dv_direct = float(nl_value(1, a, one) - nl_value(1, b, one))
    want_dv = oracle(1, float(zm), float(dl))[2]
    assert abs(dv_direct - want_dv) > 0.5 * abs(want_dv)
    assert abs(float(nl_pair(1, zm, dl, one)[2]) - want_dv) < 1e-5 * abs(want_dv)
