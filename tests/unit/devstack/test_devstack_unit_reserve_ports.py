"""``python -m mas_devstack.reserve_ports``: the sysctl value it writes."""

from __future__ import annotations

from mas_devstack._layout import Ports
from mas_devstack.reserve_ports import merged, ranges, stack_ports


def test_the_default_stack_reserves_its_span_and_its_named_ports() -> None:
    assert ranges(stack_ports(Ports())) == "55432-55531,56379,57687,58107-58108"


def test_a_based_stack_reserves_its_hundred_ports() -> None:
    assert ranges(stack_ports(Ports.from_base(23000))) == "23000-23099"


def test_what_is_reserved_already_is_kept() -> None:
    assert merged("", [5, 6, 7]) == "5-7"
    assert merged("1-3,9\n", [4, 8]) == "1-4,8-9"
