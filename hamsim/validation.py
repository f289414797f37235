"""Boundary checks shared by the public API: they raise :class:`~hamsim.errors.ValidationError`
naming the offending argument, before any computation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hamsim.errors import ValidationError

FLOAT_DTYPES = (np.float32, np.float64)


def as_dtype(dtype: object, argument: str = "dtype") -> np.dtype:
    """Return a supported floating dtype (float32 or float64)."""
    try:
        dt = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError as exc:
        raise ValidationError(argument, f"not a dtype: {dtype!r}") from exc
    if dt.type not in FLOAT_DTYPES:
        raise ValidationError(argument, f"must be float32 or float64, got {dt}")
    return dt


def array(
    value: object,
    argument: str,
    *,
    ndim: int | None = None,
    shape: Sequence[int | None] | None = None,
    dtype: np.dtype | type = np.float64,
    finite: bool = True,
) -> np.ndarray:
    """Convert ``value`` to a C-contiguous array of ``dtype`` and check it.

    ``shape`` entries of ``None`` match any length.  Raises ValidationError naming ``argument`` for a
    wrong rank or shape, a non-numeric value, or (when ``finite``) NaN/inf entries.
    """
    try:
        raw = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is a validation failure
        raise ValidationError(argument, f"cannot be read as an array ({exc})") from exc
    if raw.dtype.kind not in "biuf":
        raise ValidationError(argument, f"must be real numeric, got dtype {raw.dtype}")
    if np.issubdtype(np.dtype(dtype), np.floating) and finite and raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)):
            raise ValidationError(argument, "contains NaN or inf")
    if ndim is not None and raw.ndim != ndim:
        raise ValidationError(argument, f"must have {ndim} dimension(s), got shape {raw.shape}")
    if shape is not None:
        if raw.ndim != len(shape) or any(
            want is not None and want != got for want, got in zip(shape, raw.shape)
        ):
            want_s = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValidationError(argument, f"must have shape {want_s}, got {raw.shape}")
    if raw.dtype.kind == "f" and np.dtype(dtype).kind in "iu":
        raise ValidationError(argument, f"must be integer-valued, got dtype {raw.dtype}")
    return np.asarray(raw, dtype=dtype, order="C")  # no copy when already right (callers copy if they write)


def positive_scalar(value: object, argument: str) -> float:
    """A finite float > 0."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValidationError(argument, f"must be a number, got {value!r}") from exc
    if not np.isfinite(x) or x <= 0.0:
        raise ValidationError(argument, f"must be finite and > 0, got {value!r}")
    return x


def positive_int(value: object, argument: str, *, minimum: int = 1) -> int:
    """An integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValidationError(argument, f"must be an integer, got {value!r}")
    if int(value) < minimum:
        raise ValidationError(argument, f"must be >= {minimum}, got {value}")
    return int(value)


def real(value: object, argument: str, *, low: float | None = None, high: float | None = None,
         low_open: bool = False, allow_inf: bool = False) -> float:
    """A real number, not NaN (nor inf unless ``allow_inf``), within [low, high] (``low_open``: > low)."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError(argument, f"must be a number, got {value!r}") from None
    if np.isnan(x) or (np.isinf(x) and not allow_inf):
        raise ValidationError(argument, f"must be a finite number, got {value!r}")
    if low is not None and (x <= low if low_open else x < low):
        raise ValidationError(argument, f"must be {'>' if low_open else '>='} {low:g}, got {value!r}")
    if high is not None and x > high:
        raise ValidationError(argument, f"must be <= {high:g}, got {value!r}")
    return x


def integer(value: object, argument: str, *, low: int | None = None, high: int | None = None,
            also: tuple[int, ...] = ()) -> int:
    """An integer within [low, high], or one of ``also`` (e.g. 0 meaning 'ideal')."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValidationError(argument, f"must be an integer, got {value!r}")
    v = int(value)
    if v in also:
        return v
    if (low is not None and v < low) or (high is not None and v > high):
        extra = f" (or {', '.join(map(str, also))})" if also else ""
        raise ValidationError(argument, f"must lie in [{low}, {high}]{extra}, got {v}")
    return v
