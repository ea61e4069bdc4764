"""Ports chosen for instances on one machine never collide before their listeners bind them."""

from bench.ports import SIDE_PORT_VARIABLES, side_ports
from deployments.runtime.ports import PORT_RANGE, free_port


def test_a_process_never_hands_out_one_port_twice() -> None:
    # 2,000 ports are a fifth of the range: chosen at random without the memory of those handed
    # out, two would be equal almost surely (birthday bound), though none of them is bound yet.
    chosen = [free_port() for _ in range(2_000)]

    assert len(set(chosen)) == len(chosen)
    assert all(port in PORT_RANGE for port in chosen)


def test_one_instances_side_ports_are_distinct_from_each_other_and_the_next_instances() -> None:
    first, second = side_ports(), side_ports()

    assert set(first) == set(SIDE_PORT_VARIABLES) == set(second)
    assert len({*first.values(), *second.values()}) == 2 * len(SIDE_PORT_VARIABLES)
