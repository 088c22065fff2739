"""``ctxscope sweep MODEL ...``: measure a model over context lengths, headless."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ctxscope.cli.common import output_path, quiet_transformers
from ctxscope.cli.quality_args import add_quality_options, quality_config
from ctxscope.core.errors import BadInputError, CtxscopeError

DEFAULT_LENGTHS = "128,256,512,1k,2k,4k"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sweep", help="measure latency and memory over context lengths",
                       description="Measure prefill/decode (or encoder forward) latency and memory at each length.")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="Hub id, local directory, config.json, preset:NAME or demo:NAME (several: measured in a row)")
    add_sweep_options(p)
    from ctxscope.cli.remote_args import add_remote_options

    add_remote_options(p)
    p.add_argument("--out", default=None,
                   help="write the run as JSON (ctxscope.run/1) to this file; with several runs, a directory")
    p.add_argument("--csv", default=None, help="write the points as CSV to this file (several runs: all rows)")
    p.add_argument("--html", default=None, help="write an HTML report (several runs: the comparison)")
    p.add_argument("--md", default=None, help="write a Markdown summary (several runs: the comparison)")
    p.add_argument("--no-store", action="store_true", help="do not record the run in the history database")
    p.add_argument("--quiet", action="store_true", help="no live progress; print only the summary")
    p.set_defaults(func=run)


def add_sweep_options(p: argparse.ArgumentParser) -> None:
    """Model and sweep options shared by ``ctxscope sweep`` and ``ctxscope gui``."""
    p.add_argument("--lengths", default=None,
                   help=f"list (128,256,1k) or range START:STOP[:xF|:+N] (default {DEFAULT_LENGTHS}, capped at max positions)")
    p.add_argument("--mode", default="", help="prefill,decode (decoders) or forward (encoders); default: all that apply")
    p.add_argument("--batch", type=int, default=1, help="sequences per call (default 1)")
    p.add_argument("--dtype", default="auto",
                   help="auto|float32|float16|bfloat16 (auto: float32 on CPU, checkpoint half type on GPU); "
                        "sweep: a list such as bfloat16,float16 measures each")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N|mps")
    p.add_argument("--device-map", default=None, help="'auto' to spread a checkpoint over all GPUs (accelerate)")
    p.add_argument("--attn", default=None,
                   help="attention implementation: sdpa, eager, flash_attention_2, ... (default: transformers'); "
                        "sweep: a list such as sdpa,eager measures each on one loaded copy")
    p.add_argument("--rope-scaling", default=None, metavar="linear:F|dynamic:F|yarn:F|none",
                   help="context extension: RoPE scaling set on the config before loading (models with rotary "
                        "position embeddings only); sweep: a list such as none,linear:2,yarn:2 measures each — with "
                        "--quality, loss and retrieval past the trained length beside what each costs (lengths "
                        "beyond max positions still need --allow-beyond-max)")
    p.add_argument("--revision", default=None, help="Hub branch, tag or commit")
    p.add_argument("--random-weights", action="store_true", help="build the architecture with random weights (no checkpoint)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the model's own Python code from its repository (never saved)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per shape (default 1; the last is the memory pass)")
    p.add_argument("--min-repeats", type=int, default=5, help="timed calls at least (default 5)")
    p.add_argument("--max-repeats", type=int, default=100, help="timed calls at most (default 100)")
    p.add_argument("--budget", type=float, default=2.0, help="seconds of timed calls per point at most, after min-repeats (default 2)")
    p.add_argument("--target-spread", type=float, default=0.05, help="stop repeating once IQR/median is below this (default 0.05)")
    p.add_argument("--continue-after-oom", action="store_true", help="still try longer lengths of a mode after it ran out of memory")
    p.add_argument("--allow-beyond-max", action="store_true", help="allow lengths above the model's maximum positions")
    p.add_argument("--force", action="store_true",
                   help="run points the memory guard predicts cannot fit in available RAM/VRAM (default: skip them)")
    p.add_argument("--cache", default="dynamic", metavar="STRATEGY[,STRATEGY…]",
                   help="KV-cache strategy: dynamic (transformers' default, grows by copying), static (preallocated for "
                        "L+1 tokens), fp8 (float8 keys and values), int4 / int2 (group-wise: optimum-quanto or hqq), "
                        "offload (layers on the host, GPU only); sweep: a list such as dynamic,fp8 measures each on "
                        "one loaded copy, the quality passes reading through each cache")
    p.add_argument("--kv-group-size", type=int, default=None, metavar="N",
                   help="--cache int4/int2: values per quantization group (default 64)")
    p.add_argument("--kv-residual", type=int, default=None, metavar="TOKENS",
                   help="--cache int4/int2: newest tokens kept in full precision before they are quantized (default 128)")
    p.add_argument("--isolation", choices=("off", "strict"), default="off",
                   help="strict: refuse to start while another process holds the GPU (on CPU: keeps a core busy); "
                        "either way each point records what else ran and is flagged 'contended' past a threshold")
    p.add_argument("--seed", type=int, default=0, help="seed of the random token ids (default 0)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    p.add_argument("--attention", action="store_true",
                   help="also capture attention maps at every length (a separate, untimed pass)")
    p.add_argument("--breakdown", action="store_true",
                   help="after each point's timed passes, one profiled pass splits its time by component "
                        "(attention kernel, projections, MLP, norms, embeddings + LM head, recurrent mixers, other)")
    p.add_argument("--attention-layers", default="", help="layers to capture, e.g. 0,5,-1 (default: all)")
    p.add_argument("--attention-tiles", type=int, default=256, help="map resolution: T×T tiles (default 256)")
    p.add_argument("--text", default="random", help="attention input: random, sample (shipped prose) or a text file")
    p.add_argument("--needle", default=None, help="a sentence to place in the text and mark on every map")
    p.add_argument("--needle-depth", type=float, default=50.0, help="where the needle goes, in %% of L (default 50)")
    add_quality_options(p)


def _modes(text: str) -> tuple[str, ...]:
    return tuple(m.strip().lower() for m in text.split(",") if m.strip())


def _check_numbers(args: argparse.Namespace) -> None:
    if args.batch < 1:
        raise BadInputError(f"--batch must be at least 1, not {args.batch}")
    if args.warmup < 1:
        raise BadInputError(f"--warmup must be at least 1, not {args.warmup}")
    if args.min_repeats < 1 or args.max_repeats < args.min_repeats:
        raise BadInputError("--min-repeats must be ≥ 1 and --max-repeats ≥ --min-repeats")
    if not args.budget >= 0 or not args.target_spread >= 0:
        raise BadInputError("--budget and --target-spread must be non-negative numbers")
    from ctxscope.core.limits import check_seed, check_threads

    check_seed(args.seed)
    if args.threads is not None and args.threads < 1:
        raise BadInputError(f"--threads must be at least 1, not {args.threads}")
    if not (getattr(args, "host", None) or getattr(args, "cluster", None)):
        check_threads(args.threads)  # elsewhere, the remote's cores decide: checked there
    if args.attention_tiles < 1:
        raise BadInputError(f"--attention-tiles must be at least 1, not {args.attention_tiles}")
    if not 0 <= args.needle_depth <= 100:
        raise BadInputError(f"--needle-depth must be a percentage from 0 to 100, not {args.needle_depth}")
    if not args.attention and (args.needle or args.text != "random" or args.attention_layers):
        raise BadInputError("--text, --needle and --attention-layers apply to --attention")
    if args.attention and not (getattr(args, "host", None) or getattr(args, "cluster", None)):
        from ctxscope.core.attention.text import check_text

        check_text(args.text)  # elsewhere, files are the remote's: read there
    quality_config(args)  # bad quality options fail before any model loads
    from ctxscope.core.measure.kv_cache import KVOptions, check_options, parse_caches

    check_options(parse_caches(args.cache), KVOptions(group_size=args.kv_group_size, residual=args.kv_residual))


def specs_from_args(args: argparse.Namespace) -> tuple[Any, tuple[int, ...] | None, tuple[str, ...]]:
    """Validate what can be checked without the model: (ModelSpec, lengths, modes)."""
    from ctxscope.core.lengths import parse_lengths
    from ctxscope.core.spec import DTYPES, MODES, ModelSpec

    _check_numbers(args)
    lengths = parse_lengths(args.lengths) if args.lengths is not None else None
    modes = _modes(args.mode)
    for mode in modes:
        if mode not in MODES:
            raise BadInputError(f"unknown mode {mode!r}: use {', '.join(MODES)}")
    if args.dtype not in DTYPES:
        raise BadInputError(f"unknown dtype {args.dtype!r}: use one of {', '.join(DTYPES)}")
    from ctxscope.core.model.rope import canonical

    spec = ModelSpec(source=args.model, dtype=args.dtype, device=args.device, device_map=args.device_map,
                     attn_implementation=args.attn, revision=args.revision, random_weights=args.random_weights,
                     trust_remote_code=args.trust_remote_code,
                     rope_scaling=canonical(getattr(args, "rope_scaling", None))) if args.model is not None else None
    return spec, lengths, modes


def _layers(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise BadInputError(f"--attention-layers {text!r}: use layer indices such as 0,5,-1") from None


def sweep_config(args: argparse.Namespace, lengths: tuple[int, ...], modes: tuple[str, ...]) -> Any:
    from ctxscope.core.spec import SweepConfig

    attention = None
    if getattr(args, "attention", False):
        from ctxscope.core.attention import CaptureConfig

        attention = CaptureConfig(tiles=args.attention_tiles, layers=_layers(args.attention_layers))
    return SweepConfig(lengths=lengths, modes=modes, batch_size=args.batch, warmup=args.warmup,
                       min_repeats=args.min_repeats, max_repeats=args.max_repeats, budget_s=args.budget,
                       target_rel_iqr=args.target_spread, continue_after_oom=args.continue_after_oom,
                       allow_beyond_max=args.allow_beyond_max, force=args.force, threads=args.threads,
                       isolation=args.isolation, cache=_first_cache(args), seed=args.seed,
                       kv_group_size=getattr(args, "kv_group_size", None), kv_residual=getattr(args, "kv_residual", None),
                       attention=attention,
                       attention_text=args.text, needle=args.needle, needle_depth=args.needle_depth,
                       quality=quality_config(args), breakdown=bool(getattr(args, "breakdown", False)))


def _first_cache(args: argparse.Namespace) -> str:
    """The sweep's cache when it is one strategy (a list is a matrix: each cell sets its own)."""
    from ctxscope.core.measure.kv_cache import parse_caches

    return parse_caches(getattr(args, "cache", None))[0]


def _choices(text: str | None) -> tuple[str | None, ...]:
    if text is None:
        return (None,)
    items = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    return items or (None,)


def run(args: argparse.Namespace) -> int:
    """One run, or a matrix: every MODEL × --dtype × --attn × --rope-scaling × --cache, each
    model loaded once per dtype and RoPE scaling (kernels are switched on the loaded copy,
    cache strategies are the same copy), then the comparison."""
    from ctxscope.core.measure.kv_cache import parse_caches

    dtypes, attns, ropes = _choices(args.dtype), _choices(args.attn), _choices(getattr(args, "rope_scaling", None))
    strategies = parse_caches(args.cache)
    combos = [(m, d, a, r, c) for m in args.models for d in dtypes for a in attns for r in ropes for c in strategies]
    # Everything checkable without the model is checked before loading any.
    specs = {}
    for model, dtype, attn, rope, cache in combos:
        specs[(model, dtype, attn, rope, cache)] = specs_from_args(argparse.Namespace(**{
            **vars(args), "model": model, "dtype": dtype, "attn": attn, "rope_scaling": rope, "cache": cache}))
    _, lengths, modes = specs[combos[0]]
    single = len(combos) == 1
    out_csv, out_html, out_md = (output_path(v, f) for v, f in ((args.csv, "--csv"), (args.html, "--html"),
                                                                  (args.md, "--md")))
    out_json = output_path(args.out, "--out") if single else _out_dir(args.out)
    if out_html is not None:
        from ctxscope.report.charts import missing_dependency

        problem = missing_dependency()  # fail now, not after a long sweep
        if problem:
            raise BadInputError(f"--html: {problem}")

    from ctxscope.cli.remote_args import is_remote
    from ctxscope.core.model.loading import check_positions, check_rope, check_source

    for combo, (spec, _, _) in specs.items():
        if not is_remote(args):  # elsewhere, sources and devices are the remote's: checked there
            check_source(spec)
            check_rope(spec)  # from the config: refused before any weights load
            check_cache(spec, combo[-1], args)
            if single and lengths is not None and not args.allow_beyond_max:
                # One run: refused before its weights load. A matrix goes on with the
                # models that can run these lengths (the others' cells fail as they load);
                # the default lengths are capped at each model's positions instead.
                check_positions(spec, lengths)
    quiet_transformers(verbose=not args.quiet and sys.stderr.isatty())
    failures: list[str] = []
    problems: list[str] = []  # measured, but not kept where asked (history, --out): one line each
    results = _measure([specs[c][0] for c in combos], args, lengths, modes, single=single, out_json=out_json,
                       failures=failures, problems=problems,
                       caches=tuple(c[-1] for c in combos) if len(strategies) > 1 else ())
    _write_outputs(results, out_json, out_csv, out_html, out_md, problems)  # a full disk: one line each, all tried
    from ctxscope.cli.quality_display import quality_tables

    from ctxscope.cli.breakdown_display import breakdown_tables

    for result in results:
        quality_tables(result)
        breakdown_tables(result)
    if len(results) > 1:
        from ctxscope.cli.display import comparison_tables
        from ctxscope.report.compare import compare

        comparison_tables(compare(results))
    for line in problems:
        print(f"ctxscope: error: {line}", file=sys.stderr)
    if results and results[-1].status == "cancelled":
        if results[-1].error:  # a cancel that did not end cleanly (the remote stopped answering)
            print(f"ctxscope: error: {results[-1].error}", file=sys.stderr)
        return 130
    lost = next((r.error for r in results if r.error), None)
    if lost:
        print(f"ctxscope: error: {lost}", file=sys.stderr)
        return 3
    if failures:
        for f in failures:
            print(f"ctxscope: not measured: {f}", file=sys.stderr)
        return 2
    return 2 if problems else 0


def check_cache(spec: Any, strategy: str, args: argparse.Namespace) -> None:
    """Refuse, from the model's config (no weights), a cache strategy its layers cannot use."""
    from ctxscope.core.measure.kv_cache import KVOptions, check_before_loading

    check_before_loading(spec, strategy, KVOptions(group_size=getattr(args, "kv_group_size", None),
                                                   residual=getattr(args, "kv_residual", None)))


def _measure(specs: list[Any], args: argparse.Namespace, lengths: Any, modes: Any, *, single: bool, out_json: Any,
             failures: list[str], problems: list[str], caches: tuple[str, ...] = ()) -> list[Any]:
    """Run the matrix (one cell for a plain sweep) where the options say, each run
    recorded as its events arrive; Ctrl-C stops after the current model call (twice: at
    once). ``caches``: one KV-cache strategy per spec (the cache axis)."""
    from ctxscope.cli.display import SweepDisplay
    from ctxscope.cli.quality_display import print_live
    from ctxscope.cli.remote_args import launcher
    from ctxscope.cli.run_sink import RunView
    from ctxscope.core.events import CellFailed, ModelLoading
    from ctxscope.core.jobs.job import Job
    from ctxscope.core.jobs.launch import drive
    from ctxscope.core.lengths import parse_lengths
    from ctxscope.store.recorded import RunKept, json_on_stdout, open_recorder, recorded

    stop = threading.Event()
    status = SweepDisplay(quiet=args.quiet)

    def on_sigint(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # second Ctrl-C: give up at once (points are stored)
        stop.set()
        status.status("stopping after the current model call (Ctrl-C again to abort) …", always=True)

    def note(line: str) -> None:
        print(f"ctxscope: note: {line}", file=sys.stderr)

    def out(run_id: str) -> Path | None:
        return out_json if single else out_json / f"{run_id}.json" if out_json is not None else None

    # No lengths given: the defaults, capped at each model's positions (there, once loaded).
    job = Job("matrix", tuple(specs), sweep_config(args, lengths or parse_lengths(DEFAULT_LENGTHS), modes),
              cap_lengths=lengths is None, strict=single, caches=caches)
    maps_dir = out_json if not single else out_json.parent if out_json is not None else None
    view = RunView(quiet=args.quiet)

    def on_event(event: Any) -> None:
        if isinstance(event, ModelLoading):
            status.status(f"loading {event.spec.source} ({event.spec.dtype}) …")
        elif isinstance(event, CellFailed):
            spec = event.spec
            failures.append(f"{spec.source} {spec.dtype}{' ' + spec.attn_implementation if spec.attn_implementation else ''}"
                            f"{' RoPE ' + spec.rope_scaling if spec.rope_scaling else ''}: {event.message}")
            print(f"ctxscope: error: {event.message}; going on with the next", file=sys.stderr)
        elif isinstance(event, RunKept):
            view.show(event)
            problems.extend(event.problems)
        else:
            view.show(event)
            print_live(event, args.quiet)

    previous = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() else None
    try:
        events = recorded(launcher(args, status.status).run(job, stop=stop),
                          open_recorder(enabled=not args.no_store, maps_dir=maps_dir, notice=note), out=out,
                          last_resort=json_on_stdout)
        runs = drive(events, on_event)
        return list(runs) if isinstance(runs, tuple) else []
    finally:
        view.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _out_dir(value: str | None) -> Any:
    if value is None:
        return None
    path = Path(value).expanduser()
    if (path.exists() and not path.is_dir()) or (not path.exists() and path.suffix.lower() == ".json"):
        raise BadInputError(f"--out {value}: this sweep makes several runs; give a directory for their files")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_outputs(runs: list[Any], out_json: Any, out_csv: Any, out_html: Any, out_md: Any,
                   problems: list[str] | None = None) -> None:
    """CSV, HTML and Markdown of every run measured (a comparison when there are several).

    Called after the runs are stored and ``--out`` is written, so a report that fails
    costs nothing measured: each file is attempted on its own (atomically: no partial
    file is left). Failures are one line naming the files: added to ``problems`` when
    given, else raised as one :class:`CtxscopeError` (exit 2) once every file was tried."""
    if not runs:
        return
    from ctxscope.core.predict.predictions import predictions_for
    from ctxscope.report.build import render
    from ctxscope.store.attention_files import maps_path

    # Maps written beside the run files win: --no-store leaves only those.
    folder = None if out_json is None else out_json if out_json.is_dir() else out_json.parent
    maps: dict[str, Path | None] = {r.id: maps_path(r.id, folder) for r in runs}
    failed: list[str] = []
    for path, fmt in ((out_csv, "csv"), (out_html, "html"), (out_md, "md")):
        if path is None:
            continue
        part = path.with_name(path.name + ".part")
        try:
            predictions = predictions_for(runs) if fmt == "html" else None
            part.write_text(render(runs, fmt, maps=maps, predictions=predictions), encoding="utf-8")
            part.replace(path)
            print(f"wrote {path}", file=sys.stderr)
        except Exception as exc:  # any failure of one report: the measured runs are already safe
            part.unlink(missing_ok=True)
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            failed.append(f"{path} not written ({type(exc).__name__}{': ' + reason if reason else ''})")
    if not failed:
        return
    # Name only run files that exist now: an --out that could not be written was said
    # in its own line and is not where the run is.
    candidates = [] if out_json is None else [out_json / f"{r.id}.json" for r in runs] if out_json.is_dir() \
        else [out_json]
    where = [r.id for r in runs] + [str(p) for p in candidates if p.is_file()]
    kept = f"the measured run{'s are' if len(runs) > 1 else ' is'} unaffected ({', '.join(where)})"
    if problems is not None:
        problems += [f"{line}; {kept}" for line in failed]
        return
    raise CtxscopeError("; ".join(failed) + "; " + kept)
