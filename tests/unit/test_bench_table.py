"""`make bench`'s CPU rows: the CPU of every search by process, with one client and with 16, each
against the in-process search of the same run."""

from bench.__main__ import Figures, against, cpu_rows
from bench.cpu import ROLES, CpuUse


def use(seconds: dict[str, float], wall_s: float) -> CpuUse:
    return CpuUse(seconds={role: seconds.get(role, 0.0) for role in ROLES}, wall_s=wall_s)


def test_each_phase_gets_its_cpu_per_search_by_process_against_in_process():
    service = Figures(latencies_ms=[20.0] * 100, searches_16=1000)
    service.cpu_1 = use({"Ingress": 1.4, "ChromaStore": 0.5, "Ray's own processes": 0.2}, wall_s=2.0)
    service.cpu_16 = use({"Ingress": 9.0, "ChromaStore": 2.0, "HAProxy": 0.2, "Ray's own processes": 0.8}, wall_s=7.0)
    inproc = Figures(cpu_ms_per_search=10.5)

    cores, one, sixteen = cpu_rows(service, inproc)

    assert "| 1.71 |" in cores  # 12 CPU seconds in 7 s
    assert one.startswith(
        "| CPU ms per search, 1 client | 21.0: Ingress 14.0, Embedder 0.0, ChromaStore 5.0, HAProxy 0.0,"
    )
    assert "| 2.00x in-process |" in one
    assert sixteen.startswith("| CPU ms per search, 16 clients | 12.0: Ingress 9.0,")
    assert "| 1.14x in-process |" in sixteen


def test_targets_that_measured_no_cpu_print_no_cpu_rows():
    assert cpu_rows(Figures(), Figures(cpu_ms_per_search=10.5)) == []
    # Only the 16-client phase measured: its rows only.
    service = Figures(searches_16=10)
    service.cpu_16 = use({"Ingress": 0.1}, wall_s=1.0)
    cores, sixteen = cpu_rows(service, Figures())
    assert cores.startswith("| cores used, 16 clients")
    assert sixteen.startswith("| CPU ms per search, 16 clients | 10.0: Ingress 10.0,")


def test_cpu_use_of_two_stretches_adds_up_and_an_unmeasured_one_adds_nothing():
    first = CpuUse(seconds=dict.fromkeys(ROLES, 1.0), wall_s=2.0, steal=0.0)
    second = CpuUse(seconds=dict.fromkeys(ROLES, 3.0), wall_s=2.0, steal=10.0)
    both = first + second
    assert both.seconds == dict.fromkeys(ROLES, 4.0) and both.wall_s == 4.0 and both.steal == 5.0
    assert CpuUse() + first is first and first + CpuUse() is first


def test_a_ratio_is_never_rounded_onto_its_target():
    """0.847x printed as 0.85x beside a target of 0.85x, marked not met, read as a contradiction."""
    assert against(25.4 / 30.0, 0.85) == "0.847x"
    assert against(0.8531, 0.85) == "0.853x" and against(0.85, 0.85) == "0.85x"
    assert against(0.59, 0.8) == "0.59x" and against(1.3512, 1.5) == "1.35x"
