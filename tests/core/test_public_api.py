"""The public surface: a curated __all__, and one error tree drawn in its docstring."""

from __future__ import annotations

import inspect

import handrail
from handrail import errors


def test_all_is_sorted_and_importable() -> None:
    names = [n for n in handrail.__all__ if n != "__version__"]
    assert names == sorted(names)
    for name in handrail.__all__:
        assert getattr(handrail, name) is not None


def test_every_error_is_in_the_tree_and_the_drawing() -> None:
    classes = [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == errors.__name__
    ]
    assert len(classes) >= 12
    drawing = errors.__doc__ or ""
    for cls in classes:
        assert issubclass(cls, errors.HandrailError)
        assert cls.__name__ in drawing, f"{cls.__name__} missing from the drawn tree"
        assert cls.__name__ in errors.__all__
        assert cls.__name__ in handrail.__all__
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), "error codes must be distinct"
