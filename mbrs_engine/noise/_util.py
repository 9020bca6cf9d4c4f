"""Small helpers shared by the noise layers: parameter checks and spec text.

``check_number`` turns a user-given parameter into a float (or int) and raises
a ``ValueError`` that names the layer and the parameter when it is out of
range.  ``call_spec`` writes a layer as ``Name(arg, key=value)`` text that
:func:`mbrs_engine.noise.parse_noise` reads back exactly (floats are written
with ``repr`` so that no digit is lost).
"""
from __future__ import annotations

import math
import numbers


def check_number(owner: str, name: str, value, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, integer: bool = False):
    """``value`` as a float (an int with ``integer=True``), or a clear ``ValueError``.

    ``low``/``high`` bound it (inclusive unless ``low_open``/``high_open``).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{owner}: {name} must be a number, got {value!r}")
    if not isinstance(value, numbers.Integral) and not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
    if integer:
        if not isinstance(value, numbers.Integral) and not float(value).is_integer():
            raise ValueError(f"{owner}: {name} must be a whole number, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{owner}: {name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{owner}: {name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return value


def format_value(value) -> str:
    """One argument as spec text: numbers, booleans, None, strings, lists."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    spec = getattr(value, "spec", None)
    if callable(spec):
        return spec()
    raise TypeError(f"cannot write {value!r} in a noise spec")


def call_spec(name: str, *args, **kwargs) -> str:
    """``Name(arg, ..., key=value, ...)``; keyword arguments are written in the given order."""
    parts = [format_value(a) for a in args]
    parts += [f"{k}={format_value(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"
