"""NumPy arrays (and anything with ``__array__``) as elbo reads them: checked here only for what NumPy itself
decides (dtype, raggedness); every rule about values, shapes and layouts is the library's, shared with the CLI."""

import os

import numpy as np

_F32_MAX = float(np.finfo(np.float32).max)
# Integers beyond this are not all exact in float32, the type elbo computes in.
_F32_EXACT = 1 << 24


def as_array(x, name):
    """``x`` as a NumPy array of numbers, or a ValueError that says what it holds instead."""
    if isinstance(x, np.ma.MaskedArray):
        # NumPy would hand over the values under the mask as if they were data.
        hidden = int(np.ma.count_masked(x))
        if hidden:
            raise ValueError(
                f"{name} is a masked array with {hidden} masked values, and elbo has no missing values: fill them "
                f"({name}.filled(value)) or leave out their rows"
            )
        a = np.ma.getdata(x)
    elif isinstance(x, np.ndarray):
        a = x
    else:
        if hasattr(x, "detach") and hasattr(x, "cpu"):
            # A PyTorch tensor: NumPy reads it only once it is off the autograd graph and on the CPU.
            x = x.detach().cpu()
        try:
            a = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"{name} cannot be read as one array ({e}); give an array whose items all have the same shape"
            ) from None
    if a.dtype.kind == "O":
        raise ValueError(
            f"{name} holds Python objects (dtype object), not numbers of one type: a ragged list or mixed "
            f"values? Give e.g. np.asarray({name}, dtype=np.float32)"
        )
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} has dtype {a.dtype}: give integers, booleans or floats")
    if a.ndim == 0:
        raise ValueError(f"{name} is a single number: give an array with one item per row")
    return a


def labels_of(y, name):
    """Labels as a list of ints or of strings, one per item, or None."""
    if y is None:
        return None
    if hasattr(y, "detach") and hasattr(y, "cpu"):
        y = y.detach().cpu()
    if isinstance(y, np.ma.MaskedArray) and np.ma.count_masked(y):
        raise ValueError(
            f"{name} is a masked array with {int(np.ma.count_masked(y))} masked labels, and elbo has no missing "
            f"labels: fill them or leave out their items"
        )
    a = np.asarray(y)
    if a.ndim != 1:
        raise ValueError(f"{name} has shape {a.shape}: give one label per item, shape (n,)")
    if a.dtype.kind in "iu":
        return [int(v) for v in a]
    if a.dtype.kind == "b":
        return [int(v) for v in a]
    if a.dtype.kind in "US" or (a.dtype.kind == "O" and all(isinstance(v, str) for v in a)):
        return [str(v) for v in a]
    if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return [int(v) for v in a]
    raise ValueError(f"{name} has dtype {a.dtype}: labels are integers or strings")


def for_library(x, name, y=None, layout=None, yname="y"):
    """The tuple the native module reads an in-memory array from: a C-contiguous uint8 or float32 array, how it
    was converted, its dtype's name, its labels, the axis order of a 4-D array, and its name for messages."""
    if isinstance(x, (str, bytes)) or hasattr(x, "__fspath__"):
        if y is not None:
            raise ValueError(f"{yname} goes with an array; a path brings its own labels (class folders, a y array)")
        return os.fsdecode(os.fspath(x))
    a = as_array(x, name)
    dtype = str(a.dtype)
    kind = a.dtype.kind
    if a.dtype == np.uint8:
        tag, b = "uint8", np.ascontiguousarray(a)
    elif kind == "b":
        tag, b = "bool", np.ascontiguousarray(a).view(np.uint8)
    elif kind in "iu":
        if a.size and (a.min() < -_F32_EXACT or a.max() > _F32_EXACT):
            raise ValueError(
                f"{name} holds integers beyond ±{_F32_EXACT}, which float32 cannot hold exactly: rescale them"
            )
        tag, b = "int", np.ascontiguousarray(a, dtype=np.float32)
    else:
        if a.dtype.itemsize > 4 and a.size:
            with np.errstate(invalid="ignore"):
                big = np.abs(a) > _F32_MAX
            if np.any(big):
                at = tuple(int(i) for i in np.argwhere(big)[0])
                raise ValueError(
                    f"{name} holds {a[at]} at [{', '.join(map(str, at))}], beyond float32's range: elbo reads finite "
                    f"numbers within float32's range"
                )
        tag, b = "float", np.ascontiguousarray(a, dtype=np.float32)
    return (b, tag, dtype, labels_of(y, yname), layout, name)
