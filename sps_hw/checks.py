"""Parameter checks for component constructors: one helper, one wording of the errors."""

__all__ = ["check_int"]


def check_int(name, value, *, minimum=None, maximum=None):
    """Return ``value`` if it is an int (not a bool) in ``minimum..maximum`` (either bound may
    be None); otherwise raise :class:`TypeError` (not an int) or :class:`ValueError` (out of
    range), naming the parameter ``name`` and the value received."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is None:
            expected = f"at least {minimum}"
        elif minimum is None:
            expected = f"at most {maximum}"
        else:
            expected = f"in {minimum}..{maximum}"
        raise ValueError(f"{name} must be {expected}, not {value!r}")
    return value
