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


def test_the_gpu_target_is_judged_on_the_fastest_backend_measured():
    from bench.report import target_lines

    row = {"section": "gpu-model", "width": "full", "size": "1920x1080", "batch": 8}
    rows = [row | {"backend": "fp16-eager", "fps": 49.0}, row | {"backend": "fp16-compiled", "fps": 184.5}]
    (line,) = target_lines(rows)
    assert "fp16-compiled, batch 8" in line and "184.50" in line and "NOT met" in line
    (line,) = target_lines([row | {"backend": "fp16-compiled", "fps": 401.0}])
    assert line.endswith("— met")
