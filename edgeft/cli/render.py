"""How each command's result reads in a terminal: tables and one-line summaries. Nothing here
decides anything; every function takes a result object of the Python API and prints it.
Text that comes from data (labels, log notes) is printed as text, never read as markup."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from edgeft.anomaly import AnomalyRun
    from edgeft.bench.save import SavedBenchmark
    from edgeft.bundle import Bundle
    from edgeft.data.inspection import DatasetReport
    from edgeft.evaluation.anomaly_eval import AnomalyEvaluation
    from edgeft.evaluation.bundle_eval import BundleEvaluation
    from edgeft.evaluation.compare import CandidateReview
    from edgeft.monitor.log_review import LogReview
    from edgeft.repository.store import VersionListing
    from edgeft.runtime.anomaly.detector import AnomalyResult
    from edgeft.runtime.model_choice import ModelChoice
    from edgeft.runtime.predictor import Prediction
    from edgeft.runtime.validation import ValidationReport
    from edgeft.serve.shadow_client import ShadowReport
    from edgeft.targets import TargetProfile


def table(title: str, columns: Sequence[str], right: Sequence[str] = ()) -> Table:
    """A table whose columns in ``right`` (figures) are right-aligned."""
    made = Table(title=title)
    for column in columns:
        made.add_column(column, justify="right" if column in right else "left", overflow="fold")
    return made


def model_choice(choice: ModelChoice) -> None:
    """Which model runs and, when an int8 model was passed over, why (on stderr, so --json
    output stays clean)."""
    errors = Console(stderr=True)
    for note in choice.notes:
        errors.print(f"[yellow]note:[/] {note}", highlight=False)
    entry = choice.entry
    made_for = f" (made for {', '.join(entry.targets)})" if entry.targets else ""
    errors.print(f"[dim]running {entry.label}{made_for}[/]", highlight=False)


def zoo(console: Console, rows: list[dict[str, Any]]) -> None:
    figures = ("params", "fp32 MB")
    made = table(
        "edgeft model zoo", ("name", "task", "params", *figures[1:], "input", "weights (package)"),
        figures,
    )  # fmt: skip
    for r in rows:
        made.add_row(
            r["name"],
            str(r["task"]).removesuffix("-classification"),
            f"{r['params'] / 1e6:.2f} M",
            f"{r['fp32_mb']}",
            r["input"],
            r["weights"],
        )
    console.print(made)


def dataset_report(console: Console, report: DatasetReport, splits: Sequence[str]) -> None:
    dataset = report.dataset
    console.print(f"{dataset.source}: {dataset.kind} dataset, split {dataset.split_recipe}")
    made = table("", ("class", *splits), splits)
    for name in [*dataset.classes, "total"]:
        counts = [report.counts[s] for s in splits]
        cells = [str(sum(c.values()) if name == "total" else c.get(name, 0)) for c in counts]
        made.add_row(name, *cells, end_section=name == dataset.classes[-1])
    console.print(made)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if not report.warnings:
        console.print("[green]no problems found[/]")


def bundle_models(console: Console, bundle: Bundle) -> None:
    for entry in bundle.manifest.models:
        console.print(f"{entry.label:24s} {entry.path}  ({bundle.size_of(entry) / 1e6:.1f} MB)")
    if (spec := bundle.manifest.anomaly) is not None:
        for rel, what in spec.files.items():
            stored_as_is = (spec.distance, spec.embedding_groups)
            shown = what if rel in stored_as_is else f"{what} ({spec.bank_precision})"
            console.print(f"{shown:24s} {rel}  ({bundle.path_of(rel).stat().st_size / 1e6:.2f} MB)")
    console.print(f"bundle written to {bundle.root}")


def int8_bundle(console: Console, bundle: Bundle) -> None:
    """Each model's validation accuracy, drop with its interval, float layers and speed; then
    the classes an int8 model loses on and the engines and schemes that wrote nothing."""
    # the headline figure the budget held: a classifier's accuracy, an anomaly model's AUROC
    # (or, with good validation parts only, its false-reject rate)
    vals = [m.metrics.get("val", {}) for m in bundle.manifest.models]
    shown = next(
        (k for k in ("accuracy", "image_auroc", "false_reject") if any(k in v for v in vals)),
        "accuracy",
    )
    columns = ("model", "for targets", "size MB", f"val {shown.replace('_', ' ')}",
               "drop pt (95% CI)", "float layers", "speed vs fp32")  # fmt: skip
    made = table(
        f"{bundle.root}: int8 on the validation split, through edgeft.runtime",
        columns,
        columns[2:],
    )
    for entry in bundle.manifest.models:
        int8, val = entry.int8, entry.metrics.get("val", {})
        drop = int8.val_drop_points if int8 else None
        interval = int8.val_drop_interval if int8 else None
        made.add_row(
            entry.label + (" (candidate)" if entry.candidate else ""),
            ", ".join(entry.targets),
            f"{bundle.size_of(entry) / 1e6:.2f}",
            f"{val[shown]:.4f}" if shown in val else "",
            ""
            if drop is None
            else f"{drop:.2f}"
            + (f" ({interval.low:.2f} to {interval.high:.2f})" if interval else ""),
            str(int8.float_layers) if int8 and int8.float_layers is not None else "",
            f"{int8.speedup:.2f}x" if int8 and int8.speedup is not None else "",
        )
    console.print(made)
    for entry in bundle.manifest.models:
        for name, delta in (entry.int8.per_class_delta_points if entry.int8 else {}).items():
            if delta.recall < 0:
                console.print(
                    f"{entry.label} loses on {name}: recall {delta.recall:+.2f} pt, "
                    f"F1 {delta.f1:+.2f} pt"
                )
    for failure in bundle.manifest.int8_failures:
        console.print(
            f"[red]not written:[/] {failure.engine} {failure.scheme} int8, {failure.why}; "
            f"to accept its best candidate: {failure.command}",
            highlight=False,
        )
    console.print(f"bundle written to {bundle.root}")


def validation(console: Console, report: ValidationReport, recorded: Path) -> None:
    host = report.host
    title = (
        f"{report.bundle} on this host ({host['cpu']}, {', '.join(host['flags'])}): "
        f"{report.data}, {report.items} items"
    )
    if report.models and "false_reject" in report.models[0].scores:
        shown = ("model", "image AUROC", "false-reject", "escape", "same verdicts as export", "")
        made = table(title, shown, shown[1:])
        for m in report.models:
            since = m.recorded or {}
            made.add_row(
                m.model,
                *(_figure(m.scores, k) for k in ("image_auroc", "false_reject", "escape")),
                f"{since['agreement_with_recorded']:.1%}" if since else "",
                "[green]pass[/]" if m.passed else "[red]FAIL[/]",
            )
        _validation_footer(console, made, report, recorded)
        return
    columns = ("model", "accuracy (95% CI)", "macro-F1", "vs fp32 here", "drop pt (95% CI)",
               "budget", "since build", "")  # fmt: skip
    made = table(title, columns, columns[1:])
    for m in report.models:
        acc, drop, since = m.scores, m.drop, m.recorded or {}
        made.add_row(
            m.model,
            f"{acc['accuracy']:.4f} ({acc['accuracy_interval'][0]:.3f}-"
            f"{acc['accuracy_interval'][1]:.3f})",
            f"{acc['macro_f1']:.4f}",
            f"{m.agreement_with_fp32:.1%}" if m.agreement_with_fp32 is not None else "",
            f"{drop['drop']:.2f} ({drop['low']:.2f} to {drop['high']:.2f})" if drop else "",
            f"{m.budget_points:.2f} {m.budget_metric}" if m.budget_points is not None else "",
            f"{since['accuracy_change_points']:+.2f} pt, "
            f"{since['agreement_with_recorded']:.1%} same"
            if since
            else "",
            "[green]pass[/]" if m.passed else "[red]FAIL[/]",
        )
    _validation_footer(console, made, report, recorded)


def _validation_footer(
    console: Console, made: Table, report: ValidationReport, recorded: Path
) -> None:
    console.print(made)
    for skipped in report.skipped:
        console.print(f"skipped {skipped['model']}: {skipped['reason']}", highlight=False)
    for failure in report.failures():
        console.print(f"[red]fail:[/] {failure}", highlight=False)
    console.print(f"recorded in {recorded}")


def evaluation(console: Console, evaluated: BundleEvaluation) -> None:
    """Overall scores, per-class precision / recall / F1, and accuracy per slice."""
    from edgeft.evaluation.slices import slice_table

    results, dataset = evaluated.results, evaluated.dataset
    columns = ("model", "size MB", "accuracy", "macro-F1", "Δ acc pt", "agreement")
    made = table(
        f"{evaluated.bundle.root} on {dataset.source} {evaluated.split} "
        f"({results[0].scores['examples']})",
        columns,
        columns[1:],
    )
    for r in results:
        s = r.scores
        made.add_row(
            r.entry.label + (" (candidate)" if r.entry.candidate else ""),
            f"{r.size_bytes / 1e6:.2f}",
            f"{s['accuracy']:.4f}",
            f"{s['macro_f1']:.4f}",
            f"{s['accuracy_delta_points']:+.2f}" if "accuracy_delta_points" in s else "",
            f"{s['agreement']:.4f}" if "agreement" in s else "",
        )
    console.print(made)
    labels = [r.entry.label for r in results]
    per_class = table("per class (precision / recall / F1)", ("class", *labels), labels)
    for name in evaluated.bundle.manifest.labels:
        cells = [r.scores["per_class"][name] for r in results]
        per_class.add_row(
            name, *(f"{c['precision']:.3f} / {c['recall']:.3f} / {c['f1']:.3f}" for c in cells)
        )
    console.print(per_class)
    sliced = slice_table(
        f"accuracy per slice ({dataset.source}'s metadata.csv)",
        [(r.entry.label, r.scores) for r in results],
    )
    if sliced is not None:
        console.print(sliced)


def anomaly_fit(console: Console, run: AnomalyRun) -> None:
    r = run.report
    found = (
        f"val AUROC {r['val_auroc'][r['scoring']]:.4f}, escape {r['val_escape']:.3f}"
        if r.get("val_auroc")
        else "no defects in val"
    )
    console.print(
        f"fitted in {r['fit_seconds']:.1f} s: bank of {r['bank_rows']} patches; scoring "
        f"{r['scoring']}, threshold by {run.spec.threshold_rule['rule']} (val false-reject "
        f"{r['val_false_reject']:.3f}, {found}); run written to {run.run_dir}",
        highlight=False,
    )
    if run.spec.groups:
        shown = ", ".join(f"{name} ({n} good parts)" for name, n in r["groups"].items())
        console.print(f"scaled per variant: {shown}", highlight=False)


def _figure(scores: dict[str, Any], key: str) -> str:
    value = scores.get(key)
    return "" if value is None else f"{value:.4f}"


def anomaly_evaluation(console: Console, evaluated: AnomalyEvaluation) -> None:
    """Each model's detection figures, then per defect type and per slice (first model)."""
    first = evaluated.results[0].scores
    keys = ("image_auroc", "pixel_auroc", "pro", "f1", "false_reject", "escape")
    columns = ("model", "size MB", "image AUROC", "pixel AUROC", "PRO", "F1", "false-reject",
               "escape")  # fmt: skip
    made = table(
        f"{evaluated.bundle.root} on {evaluated.source} {evaluated.split} ({first['items']} "
        f"items, {first['defects']} defective; threshold {first['threshold']:.3f})",
        columns,
        columns[1:],
    )
    for r in evaluated.results:
        made.add_row(
            r.entry.label, f"{r.size_bytes / 1e6:.2f}", *(_figure(r.scores, k) for k in keys)
        )
    console.print(made)
    for title, groups in (("per defect type", "per_defect"), ("per slice", "slices")):
        if not first[groups]:
            continue
        grouped = table(
            f"{title} ({evaluated.results[0].entry.label})",
            ("group", "items", "defects", "image AUROC", "false-reject", "escape"),
            ("items", "defects", "image AUROC", "false-reject", "escape"),
        )
        for name, row in first[groups].items():
            grouped.add_row(
                escape(name), str(row["items"]), str(row["defects"]),
                *(_figure(row, k) for k in ("image_auroc", "false_reject", "escape")),
            )  # fmt: skip
        console.print(grouped)


def anomaly_results(
    console: Console, inputs: Sequence[str], results: Sequence[AnomalyResult]
) -> None:
    for item, result in zip(inputs, results, strict=True):
        colour = "red" if result.defective else "green"
        drawn = f"  overlay: {result.overlay}" if result.overlay else ""
        console.print(
            f"{escape(item)}: [{colour}]{result.verdict}[/] score {result.score:.3f} "
            f"(threshold {result.threshold:.3f}){escape(drawn)}",
            highlight=False,
        )


def threshold_change(console: Console, bundle: Bundle) -> None:
    spec = bundle.manifest.anomaly
    assert spec is not None
    previous = spec.threshold_rule.get("previous", {})
    console.print(
        f"threshold {previous.get('threshold', 0.5):.3f} -> {spec.threshold:.3f} "
        f"({spec.threshold_rule['rule']}); bundle written to {bundle.root}",
        highlight=False,
    )


def candidate_review(console: Console, review: CandidateReview) -> None:
    from edgeft.evaluation.compare import LOWER_IS_BETTER

    comparison = review.comparison
    roles = {role: b.root for role, b in comparison.bundles.items()}
    made = table(
        f"{roles['candidate']} (candidate) vs {roles['production']} (production)",
        ("environment", "items", "metric", "production", "candidate", "Δ pt"),
        ("items", "Δ pt"),
    )
    for env in comparison.environments:
        rows = env.rows()
        for i, (metric, before, after, delta) in enumerate(rows):
            better = -delta if metric in LOWER_IS_BETTER else delta
            colour = "green" if better > 0 else "red" if better < 0 else "dim"
            made.add_row(
                env.name if i == 0 else "",
                str(env.items) if i == 0 else "",
                metric,
                f"{before:.4f}",
                f"{after:.4f}",
                f"[{colour}]{delta:+.2f}[/]",
                end_section=i == len(rows) - 1,
            )
    console.print(made)
    for skipped in comparison.skipped:
        console.print(f"skipped {skipped['environment']}: {skipped['reason']}", highlight=False)
    if review.pushed is not None:
        console.print(
            f"{review.pushed.model} version {review.pushed.version} pushed to "
            f"{review.repository}, alias candidate",
            highlight=False,
        )


def predictions(
    console: Console, inputs: Sequence[str], results: Sequence[Prediction], top_k: int
) -> None:
    for item, result in zip(inputs, results, strict=True):
        ranked = ", ".join(f"{label} {p:.3f}" for label, p in result.top_k)
        console.print(
            f"{item}: [bold]{result.label}[/] ({result.confidence:.3f})  top-{top_k}: {ranked}",
            highlight=False,
        )


def target_profiles(console: Console, profiles: Sequence[TargetProfile]) -> None:
    made = table("edgeft targets", ("name", "engines", "int8 act x weights", "runs here"))
    for p in profiles:
        scheme, why_not = p.quantization, p.mismatches()
        made.add_row(
            p.name,
            ", ".join(p.engines),
            f"{scheme.get('activations', '?')} x {scheme.get('weights', 'int8')}"
            + (" (7-bit)" if scheme.get("reduce_range") else ""),
            "[green]yes[/]" if not why_not else f"[dim]no: {'; '.join(why_not)}[/]",
        )
    console.print(made)


def benchmark(console: Console, bundle: Path, result: SavedBenchmark, as_json: bool) -> None:
    """The latency table (unless --json printed the run), then warnings and where it went; with
    --json every line but the JSON goes to stderr."""
    run, saved = result.run, result.saved
    notes = Console(stderr=True) if as_json else console
    for skipped in run.skipped:
        notes.print(f"skipped {skipped['model']}: {skipped['reason']}", highlight=False)
    if not as_json:
        headers = ("model", "batch", "p50 ms", "p90 ms", "p99 ms", "items/s", "tput mode/s",
                   "cold start ms", "peak MB", "size MB", "val acc")  # fmt: skip
        made = table(
            f"{bundle} on {run.target} ({run.host['cpu']}, {run.host['cores']} cores)",
            headers,
            headers[1:],
        )
        for model in run.models:
            for size, stats in model.latency.items():
                made.add_row(
                    model.label, str(size), f"{stats.p50_ms:.2f}", f"{stats.p90_ms:.2f}",
                    f"{stats.p99_ms:.2f}", f"{stats.throughput:.0f}",
                    f"{model.throughput_mode_ips:.0f}" if model.throughput_mode_ips else "-",
                    f"{model.cold_start_ms:.0f}" if model.cold_start_ms else "-",
                    f"{model.peak_rss_mb:.0f}" if model.peak_rss_mb else "-",
                    f"{model.size_mb:.2f}",
                    f"{model.accuracy:.1%}" if model.accuracy is not None else "-",
                )  # fmt: skip
        console.print(made)
    warn = Console(stderr=True)
    if saved.json_problem:
        warn.print(f"[yellow]warning:[/] {saved.json_problem}", highlight=False)
    for warning in result.warnings:
        notes.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if saved.not_stored is None:
        notes.print(f"run {saved.run_id} stored in {saved.database}")
    else:
        warn.print(
            f"[yellow]warning:[/] {saved.not_stored}. The run is not in the database; "
            f"{saved.json_path} holds it.",
            highlight=False,
        )


def stored_runs(console: Console, database: Path, runs: Sequence[dict[str, Any]]) -> None:
    keys = ("id", "created", "target", "cpu", "bundle", "rows")
    made = table(f"benchmark runs in {database}", keys)
    for run in runs:
        made.add_row(*(str(run[k]) for k in keys))
    console.print(made)


def repository_versions(console: Console, repo: Path, rows: Sequence[VersionListing]) -> None:
    made = table(f"models in {repo}", ("model", "version", "aliases", "manifest sha256"))
    for row in rows:
        made.add_row(row.model, str(row.version), ", ".join(row.aliases), row.manifest_sha256[:12])
    console.print(made)


def alias_history(console: Console, model: str, changes: Sequence[Any]) -> None:
    made = table(f"{model} alias history", ("at", "who", "alias", "action", "from", "to"))
    for c in changes:
        made.add_row(
            c.at, c.who, c.alias, c.action, str(c.from_version or "-"), str(c.to_version or "-")
        )
    console.print(made)


def log_review(console: Console, review: LogReview) -> None:
    """Per version, a table of windows: estimated and realized accuracy, what drifted."""
    report = review.report
    for version in report.versions:
        title = escape(f"{version.model} version {version.version}")
        if version.damaged:
            console.print(
                f"[red]{title}: {version.damaged} damaged row(s) of the log skipped[/] "
                f"(first: {escape(version.damage[0])})",
                highlight=False,
            )
        if version.skipped:
            console.print(f"{title}: not analysed: {version.skipped}", highlight=False)
            continue
        made = table(
            f"{title} (windows of {report.window})",
            ("window", "from", "items", "estimated accuracy", "realized", "drifted"),
        )
        for i, w in enumerate(version.windows):
            estimate = w.estimate
            made.add_row(
                str(i + 1),
                time.strftime("%Y-%m-%d %H:%M", time.localtime(w.start)),
                str(w.items),
                ""
                if estimate is None
                else f"{estimate.value:.3f} [{estimate.low:.3f}, {estimate.high:.3f}]"
                + ("" if w.estimate_reliable else " (inputs drifted: unreliable)"),
                "" if w.realized is None else f"{w.realized:.3f} ({w.labelled})",
                f"[red]{', '.join(w.drifted)}[/]" if w.drifted else "[green]-[/]",
            )
        console.print(made)
    for when, note in report.notes:
        when_text = time.strftime("%Y-%m-%d %H:%M", time.localtime(when))
        console.print(f"note ({when_text}): {escape(note)}", highlight=False)
    exported = review.exported
    if exported is not None:
        console.print(
            f"{exported.to_label} input(s) to label and {exported.labelled} labelled in "
            f"{exported.out}"
            + "".join(f"; label {k!r} in folder {v!r}" for k, v in exported.renamed.items())
            + (f"; {exported.damaged} damaged row(s) skipped" if exported.damaged else ""),
            highlight=False,
            markup=False,  # labels come from the log
        )


def shadow(console: Console, model: str, report: ShadowReport) -> None:
    agreement = "-" if report.agreement is None else f"{report.agreement:.1%}"
    console.print(
        f"{model}: production {report.production_version} vs shadow "
        f"{report.shadow_version} on {report.items} items ({report.requests} requests): "
        f"agreement {agreement}, shadow p50 {report.p50_ms or 0:.1f} ms, p99 "
        f"{report.p99_ms or 0:.1f} ms, {report.failed} failed, {report.skipped} skipped",
        highlight=False,
    )
    made = table("where the shadow would answer differently", ("production says", "shadow says",
                                                               "items"))  # fmt: skip
    for change in report.changes:
        made.add_row(change.production, change.shadow, str(change.items))
    console.print(made)
