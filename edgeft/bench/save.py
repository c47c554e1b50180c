"""``edgeft bench`` as a call: benchmark a bundle on a target and keep the run, which took
minutes: the JSON file first (a locked or broken database must not lose it), then the results
database, then the JSON again naming the run's id there."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rich.progress import Progress

from edgeft.atomic import write_text_atomically
from edgeft.bench.run import BenchmarkRun, benchmark_bundle, slower_int8
from edgeft.bench.store import ResultsStore
from edgeft.bundle import Bundle
from edgeft.errors import EdgeftError
from edgeft.targets import resolve_target


@dataclass(frozen=True)
class SavedRun:
    """Where the run went: its id in ``database`` (None where the database refused it, with
    ``not_stored`` saying why) and the JSON file (None where not asked for or not writable)."""

    run_id: int | None
    database: Path
    json_path: Path | None
    not_stored: str | None = None
    json_problem: str | None = None


def run_json(run: BenchmarkRun, run_id: int | None) -> str:
    """The run as JSON, naming its id in the database (null until the database has it)."""
    return json.dumps(run.to_dict() | {"run_id": run_id}, indent=2)


def write_run_json(path: Path, run: BenchmarkRun, run_id: int | None) -> None:
    """Replace ``path`` atomically with the run."""
    write_text_atomically(path, run_json(run, run_id) + "\n")


def save_run(run: BenchmarkRun, json_out: Path | None = None, db: Path | None = None) -> SavedRun:
    """Store the run in the database (default: the data folder's) and, when asked, ``json_out``;
    an error only where it was saved nowhere."""
    json_path, json_problem = None, None
    if json_out is not None:
        try:
            write_run_json(json_out, run, None)
            json_path = json_out
        except OSError as exc:
            json_problem = f"could not write {json_out}: {exc}"
    store = ResultsStore(db)
    try:
        run_id = store.add(run)
    except EdgeftError as exc:
        if json_path is None:
            raise EdgeftError(f"the run was not saved: {exc}") from exc
        return SavedRun(None, store.path, json_path, str(exc), json_problem)
    if json_path is not None:
        try:
            write_run_json(json_path, run, run_id)  # now naming the run's id in the database
        except OSError as exc:
            json_problem = f"could not write {json_path}: {exc}"
    return SavedRun(run_id, store.path, json_path, None, json_problem)


@dataclass(frozen=True)
class SavedBenchmark:
    """The run, where it was kept, and warnings on it (int8 slower than fp32 here)."""

    run: BenchmarkRun
    saved: SavedRun
    warnings: list[str]


def benchmark_and_save(
    bundle: Path,
    target: str | None = None,
    batches: tuple[int, ...] = (1,),
    duration_s: float = 5.0,
    cold_start: bool = True,
    json_out: Path | None = None,
    db: Path | None = None,
    progress: Progress | None = None,
) -> SavedBenchmark:
    """Benchmark every model of ``bundle`` on ``target`` (default: the profile this host
    matches), then save the run."""
    run = benchmark_bundle(
        Bundle.load(bundle), resolve_target(target), batches, duration_s, cold_start, progress
    )
    return SavedBenchmark(run, save_run(run, json_out, db), slower_int8(run.latency_rows()))
