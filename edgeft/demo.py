"""``edgeft demo``: the whole mission on the built-in ELPV solar-cell defect data.

It grows with the pipeline; today it materialises and inspects the data and lists the zoo.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console


def run_demo(workdir: Path, console: Console) -> None:
    from edgeft.data import inspect_dataset, load_dataset
    from edgeft.data.elpv import LICENCE

    console.rule("edgeft demo: solar-cell defects (ELPV)")
    console.print(f"ELPV data: Deitsch et al., licence {LICENCE} (non-commercial).")
    dataset = load_dataset("elpv")
    report = inspect_dataset(dataset)
    for split, counts in report.counts.items():
        console.print(f"  {split:5s} " + ", ".join(f"{c}: {n}" for c, n in sorted(counts.items())))
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "dataset.json").write_text(__import__("json").dumps(dataset.describe(), indent=2))
    console.print(f"dataset record written to {workdir / 'dataset.json'}")
