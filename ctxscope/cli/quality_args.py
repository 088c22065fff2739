"""``--quality`` and its options, shared by ``ctxscope sweep`` and ``ctxscope gui``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ctxscope.core.errors import BadInputError

_DETAIL = ("quality_text", "quality_text_encoding", "quality_targets", "quality_windows", "needle_depths",
           "needle_seeds", "needle_tasks", "effective_threshold", "effective_epsilon", "fits")
#: ``maxctx --format json`` output is a few KiB; anything this big is something else.
MAX_FITS_BYTES = 16 * 1024**2


def add_quality_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quality", nargs="?", const="loss,needle", default=None, metavar="loss,needle",
                   help="also measure what context buys (untimed passes): loss vs context and needle retrieval "
                        "(default both; 'loss' or 'needle' for one)")
    p.add_argument("--quality-text", default=None,
                   help="the long text read by --quality: pride-and-prejudice (default), the-great-gatsby or a "
                        "text file (never tiled: lengths it cannot supply are refused; a famous text may be "
                        "memorised by the model: your own documents are the honest test)")
    p.add_argument("--quality-text-encoding", default=None, metavar="ENCODING",
                   help="the --quality-text file's encoding (default UTF-8), e.g. cp1252 for an old Gutenberg file; "
                        "line ends are normalised either way")
    p.add_argument("--quality-targets", type=int, default=None, help="target tokens per loss window (default 256)")
    p.add_argument("--quality-windows", type=int, default=None,
                   help="loss windows taken at different places in the text (default 4)")
    p.add_argument("--needle-depths", default=None, help="needle depths in %% (default 0,25,50,75,100)")
    p.add_argument("--needle-seeds", type=int, default=None,
                   help="needle trials per length, depth and task (default 3)")
    p.add_argument("--needle-tasks", default=None, metavar="single,multikey,multivalue,multiquery,vt",
                   help="retrieval tasks (default single): single (one key); RULER-style multikey (distractor "
                        "needles of the same form), multivalue (several values for one key), multiquery (several "
                        "keys asked at once), vt (variable tracking: follow a chain of assignments)")
    p.add_argument("--effective-threshold", type=float, default=None,
                   help="effective context: longest length with retrieval ≥ this (default 0.9)")
    p.add_argument("--effective-epsilon", type=float, default=None,
                   help="effective context: the loss counts as flat once a doubling saves less than this many "
                        "nats/token (default 0.01)")
    p.add_argument("--fits", default=None,
                   help="the longest context that fits on this device, if known: a token count or the JSON of "
                        "`ctxscope maxctx --format json` (shown as claimed · fits · effective)")


def _depths(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise BadInputError(f"--needle-depths {text!r}: use percentages such as 0,25,50,75,100") from None


def parse_fits(value: str) -> int:
    """A token count, or ``largest_fit`` from a ``ctxscope maxctx --format json`` file."""
    if value.strip().isdigit():
        return int(value)
    from ctxscope.core.files import FileRefused, read_limited

    path = Path(value).expanduser()
    if not path.exists():
        raise BadInputError(f"--fits {value}: give a token count or a `ctxscope maxctx --format json` file")
    try:
        data = json.loads(read_limited(path, MAX_FITS_BYTES))
    except FileRefused as exc:
        raise BadInputError(f"--fits {value}: {exc.strerror} (expected `ctxscope maxctx --format json` output)") \
            from None
    except OSError as exc:
        raise BadInputError(f"--fits {value}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise BadInputError(f"--fits {value}: not JSON (expected `ctxscope maxctx --format json` output)") from None
    fit = data.get("largest_fit") if isinstance(data, dict) else None
    if type(fit) is not int or fit < 1:
        raise BadInputError(f"--fits {value}: no largest_fit in it (nothing fitted, or not maxctx output)")
    return fit


def quality_config(args: argparse.Namespace, *, only_if_applicable: bool = False) -> Any:
    """The :class:`QualityConfig` of ``args`` (``None`` without ``--quality``), checked."""
    from ctxscope.core.quality.config import QualityConfig, check_config, parse_kinds, parse_tasks

    if getattr(args, "quality", None) is None:
        given = [f"--{name.replace('_', '-')}" for name in _DETAIL if getattr(args, name, None) is not None]
        if given:
            raise BadInputError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to --quality")
        return None
    defaults = QualityConfig()
    cfg = QualityConfig(
        kinds=parse_kinds(args.quality), text=args.quality_text or defaults.text,
        target_tokens=defaults.target_tokens if args.quality_targets is None else args.quality_targets,
        windows=defaults.windows if args.quality_windows is None else args.quality_windows,
        depths=defaults.depths if args.needle_depths is None else _depths(args.needle_depths),
        seeds=defaults.seeds if args.needle_seeds is None else args.needle_seeds,
        tasks=defaults.tasks if getattr(args, "needle_tasks", None) is None else parse_tasks(args.needle_tasks),
        text_encoding=getattr(args, "quality_text_encoding", None),
        threshold=defaults.threshold if args.effective_threshold is None else args.effective_threshold,
        epsilon=defaults.epsilon if args.effective_epsilon is None else args.effective_epsilon,
        fits=None if args.fits is None else parse_fits(args.fits), only_if_applicable=only_if_applicable)
    check_config(cfg)
    elsewhere = bool(getattr(args, "host", None) or getattr(args, "cluster", None))  # read where the sweep runs
    if cfg.text not in _shipped() and not elsewhere:
        from ctxscope.core.quality.texts import read_document

        # Read it now, as the quality pass will: a binary, empty or non-UTF-8 file is
        # refused before a model loads (minutes for a fresh demo), not after the sweep.
        read_document(cfg.text)
    return cfg


def _shipped() -> tuple[str, ...]:
    from ctxscope.core.quality.config import TEXTS

    return tuple(TEXTS)
