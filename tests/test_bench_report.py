"""The benchmark report names the machine of every number, also after a partial re-run."""

from bench.__main__ import merged_machine
from bench.report import write


def machine(cpu: str, date: str) -> dict:
    return {"date": date, "cpu": cpu, "cores": 2, "bf16_instructions": [], "gpu": None, "torch": "2.x", "python": "3"}


def test_a_section_measured_on_another_machine_is_labelled_with_it_and_the_header_keeps_the_first(tmp_path):
    first = machine("Intel Xeon", "2026-01-01")
    info = merged_machine(first, machine("AMD EPYC", "2026-02-02"), "creation")
    info = merged_machine(info, machine("AMD EPYC", "2026-03-03"), "video")
    info = merged_machine(info, machine("Intel Xeon", "2026-04-04"), "creation")
    write(info, [], tmp_path)
    header = (tmp_path / "RESULTS.md").read_text().splitlines()[2]
    assert header.startswith("Measured 2026-01-01 on Intel Xeon")
    assert "Section video re-measured 2026-03-03 on AMD EPYC" in header
    assert "Section creation re-measured 2026-04-04 on Intel Xeon" in header and "2026-02-02" not in header
