"""One ELPV bundle for two kinds of box: int8 models for ``x86-avx2-no-vnni`` and ``x86-avx512-vnni``
per engine, which one each kind of host runs, and ``edgeft validate`` on this host.

    .venv/bin/python benchmarks/int8_on_target.py --run RUN_DIR --out /tmp/int8-on-target

Exports RUN_DIR (with its acceptance set), runs ``edgeft quantize --target
x86-avx2-no-vnni,x86-avx512-vnni`` (both engines, 1-point budget), scores every model on the ELPV test
split through edgeft.runtime (certain and uncertain cells apart, and defect recall), asks the
runtime's model choice which int8 model an AVX2 box, a VNNI box, an ARM box and this host would
run, runs ``edgeft validate`` here, and times every model this host runs at batch 1 in
interleaved rounds. Writes benchmarks/results/int8_on_target.{json,md}.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from side_by_side import add_batch1_latency, elpv_test_groups, run_arguments, write_table

from edgeft.data import load_dataset
from edgeft.export import export_bundle
from edgeft.quantize import QuantizeConfig, quantize_bundle
from edgeft.runtime.model_choice import choose_model
from edgeft.runtime.scoring import encode_split, entry_logits
from edgeft.runtime.validation import validate_bundle, write_validation_record
from edgeft.targets import Host, host_fingerprint, this_host

RESULTS = Path(__file__).parent / "results"
TARGETS = ("x86-avx2-no-vnni", "x86-avx512-vnni")
HOSTS = {
    "AVX2 box (no VNNI)": Host("AVX2", "x86_64", frozenset({"avx2", "fma"}), 2),
    "AVX-512 VNNI box": Host("VNNI", "x86_64", frozenset({"avx2", "avx512f", "avx512_vnni"}), 2),
    "ARM64 box": Host("A76", "aarch64", frozenset({"asimd", "asimddp"}), 4),
}


def main() -> None:
    args = run_arguments()
    console = Console()
    fp32 = export_bundle(args.run, args.out / "fp32", overwrite=True)
    started = time.perf_counter()
    config = QuantizeConfig(targets=TARGETS, use_qat=False)
    bundle = quantize_bundle(fp32.root, args.out / "int8", config, overwrite=True, console=console)
    quantize_seconds = time.perf_counter() - started
    manifest = bundle.manifest

    dataset = load_dataset("elpv")
    certain = elpv_test_groups(dataset)["certain"]
    test = encode_split(bundle, dataset, "test")
    defective = manifest.labels.index("defective")
    logits = {entry.path: entry_logits(bundle, entry, test) for entry in manifest.models}
    rows: dict[str, dict] = {}
    for entry in manifest.models:
        predicted = logits[entry.path].argmax(1)
        reference = logits[manifest.model(entry.engine, "fp32").path].argmax(1)
        hits = predicted == test.labels
        rows[entry.label] = {
            "targets": entry.targets,
            "test_accuracy": float(hits.mean()),
            "accuracy_certain_cells": float(hits[certain].mean()),
            "accuracy_uncertain_cells": float(hits[~certain].mean()),
            "defect_recall": float(hits[test.labels == defective].mean()),
            "agreement_with_fp32": float((predicted == reference).mean()),
            "val_drop_points": entry.details.get("val_drop_points"),
            "val_drop_interval": entry.details.get("val_drop_interval"),
            "float_layers": len(entry.details.get("kept_float", [])),
            "unlabelled_agreement": (entry.details.get("unlabelled") or {}).get("agreement"),
            "size_mb": bundle.size_of(entry) / 1e6,
        }
    choices = {
        name: choose_model(manifest, "onnxruntime", host=host).entry.label
        for name, host in {**HOSTS, f"this host ({this_host().cpu_model})": this_host()}.items()
    }
    choices |= {
        f"{name}, OpenVINO": choose_model(manifest, "openvino", host=host).entry.label
        for name, host in HOSTS.items()
    }
    report = validate_bundle(bundle)
    record = write_validation_record(report)
    for model in report.models:
        rows[model.model]["validate_here"] = {
            "passed": model.passed,
            "accuracy": model.scores["accuracy"],
            "drop": model.drop,
            "agreement_with_recorded": (model.recorded or {}).get("agreement_with_recorded"),
        }
    models = {
        entry.label: (entry.engine, bundle.path_of(entry), entry.precision)
        for entry in manifest.models
    }
    add_batch1_latency(rows, models, test, args.rounds, args.seconds)
    command = f"python benchmarks/int8_on_target.py --run {args.run} --out {args.out}"
    host = host_fingerprint()
    result = {
        "command": command,
        "host": host,
        "quantize_seconds": round(quantize_seconds, 1),
        "test_examples": len(test),
        "acceptance_items": report.items,
        "validate_passed_here": report.passed,
        "validation_record": str(record),
        "runtime_choice": choices,
        "models": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "int8_on_target.json").write_text(json.dumps(result, indent=2) + "\n")
    columns = ("model", "for targets", "test accuracy", "certain cells", "uncertain cells",
               "defect recall", "val drop pt (95% CI)", "float layers", "validate here", "size MB",
               "p50 ms (batch 1)")  # fmt: skip
    cells = {}
    for name, r in rows.items():
        interval = r["val_drop_interval"]
        checked = r.get("validate_here")
        cells[name] = (
            ", ".join(r["targets"]),
            f"{r['test_accuracy']:.4f}",
            f"{r['accuracy_certain_cells']:.4f}",
            f"{r['accuracy_uncertain_cells']:.4f}",
            f"{r['defect_recall']:.4f}",
            f"{r['val_drop_points']:.2f} ({interval['low']:.2f} to {interval['high']:.2f})"
            if interval
            else "",
            str(r["float_layers"]) if r["val_drop_points"] is not None else "",
            ("pass" if checked["passed"] else "FAIL") if checked else "",
            f"{r['size_mb']:.2f}",
            f"{r['p50_ms_batch1']:.2f}",
        )
    picks = "\n".join(f"- {name}: {label}" for name, label in choices.items())
    write_table(
        cells,
        columns,
        f"ELPV test ({len(test)} cells), one bundle for {', '.join(TARGETS)}",
        RESULTS / "int8_on_target.md",
        f"Command: `{command}`\n\nHost: {host['cpu']}, {host['cores']} cores, flags "
        f"{', '.join(host['flags'])}. `edgeft validate` here on the {report.items}-item "
        f"acceptance set: {'passed' if report.passed else 'FAILED'}.\n\n"
        f"Which int8 model each kind of box runs (`precision=auto`):\n\n{picks}",
        console,
    )


if __name__ == "__main__":
    main()
