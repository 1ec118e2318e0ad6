"""The shared argument checks (cosmos_kernels.checks): messages, exception types, torch.compile."""

import pytest
import torch

from cosmos_kernels.checks import (
    ArgumentTypeError,
    check_int,
    check_number,
    check_optional_int,
    check_power_of_two,
)
from cosmos_kernels.diffusion import edm_scalings


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: check_int("f", "n", 2.5, 1), ArgumentTypeError, "f: n must be an int >= 1, got 2.5"),
        (lambda: check_int("f", "n", True, 1), ArgumentTypeError, "f: n must be an int >= 1, got True"),
        (lambda: check_int("f", "n", 0, 1), ValueError, "f: n must be an int >= 1, got 0"),
        (lambda: check_int("f", "d", 3, -3, maximum=2), ValueError, "f: d must be an int in [-3, 2], got 3"),
        (lambda: check_optional_int("f", "s", -1, 0), ValueError, "f: s must be an int >= 0 or None, got -1"),
        (lambda: check_power_of_two("f", "p", 12, 4), ValueError, "f: p must be a power of two >= 4, got 12"),
        (lambda: check_number("f", "x", 0, positive=True), ValueError, "f: x must be a finite number > 0"),
        (lambda: check_number("f", "x", 2, minimum=0, maximum=1), ValueError, "number in [0, 1], got 2"),
        (lambda: check_number("f", "x", float("nan")), ValueError, "f: x must be a finite number, got nan"),
        (lambda: check_number("f", "x", "1", minimum=0), ArgumentTypeError, "number >= 0, got '1'"),
        (lambda: check_number("f", "x", [1]), ArgumentTypeError, "f: x must be a finite number, got list"),
    ],
)
def test_messages_name_the_function_the_argument_and_the_expectation(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)


def test_a_wrong_type_is_both_a_type_error_and_a_value_error():
    # The model layers raised ValueError for every bad number before the checks were shared.
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ValueError)
    assert check_optional_int("f", "s", None, 0) is None and check_number("f", "x", 3) == 3.0


def test_number_checks_trace_under_torch_compile():
    # A Python float is a symbolic input under dynamic shapes: the checks must use traceable comparisons.
    scaled = torch.compile(lambda x, s: edm_scalings(s)[0] * x, backend="eager", fullgraph=True, dynamic=True)
    for sigma in (1.0, 2.0):
        torch.testing.assert_close(scaled(torch.ones(2), sigma), edm_scalings(sigma)[0] * torch.ones(2))
