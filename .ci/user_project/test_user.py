"""A user's own test suite that does not use the SDK: installing the SDK must not break it."""


def test_arithmetic() -> None:
    assert 1 + 1 == 2
