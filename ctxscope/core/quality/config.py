"""What a quality pass measures: a frozen request, validated without the model."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ctxscope.core.errors import BadInputError
from ctxscope.core.quality.records import TASKS

KINDS = ("loss", "needle")
#: Shipped texts (``resources/texts``): name -> (file, where it comes from).
TEXTS = {
    "pride-and-prejudice": ("pride-and-prejudice.txt.gz",
                            "Jane Austen, Pride and Prejudice (1813), Project Gutenberg eBook #1342, public domain"),
    "the-great-gatsby": ("the-great-gatsby.txt.gz",
                         "F. Scott Fitzgerald, The Great Gatsby (1925), Project Gutenberg eBook #64317, public domain"),
}
DEFAULT_TEXT = "pride-and-prejudice"
DEFAULT_DEPTHS = (0.0, 25.0, 50.0, 75.0, 100.0)


@dataclass(frozen=True, slots=True)
class QualityConfig:
    """The quality passes of a sweep (``SweepConfig.quality``).

    Attributes
    ----------
    kinds
        ``"loss"`` (loss of fixed target windows vs the context before them) and/or
        ``"needle"`` (retrieval of a planted key over length × depth).
    text
        A shipped text (see :data:`TEXTS`) or a path to a text file. It is never
        tiled: lengths it cannot supply are refused.
    text_encoding
        The file's encoding (``None``: UTF-8); line ends are normalised either way.
    target_tokens, windows
        The loss's K target tokens per window and how many windows (taken at different
        places in the text); the same windows are scored at every context length.
    depths, seeds
        Needle depths in percent of the haystack and trials per (length, depth, task).
    tasks
        Retrieval tasks (:data:`~ctxscope.core.quality.records.TASKS`): ``single`` (one
        key, teacher-forced) and the RULER-style ``multikey``, ``multivalue``,
        ``multiquery`` and ``vt`` (:mod:`ctxscope.core.quality.tasks`).
    threshold, epsilon
        Effective context: the longest length with retrieval ≥ ``threshold``, and the
        length beyond which a doubling lowers the loss by less than ``epsilon`` nats/token.
    fits
        The longest context that fits on this device (``ctxscope maxctx``), when known.
    only_if_applicable
        A front end that offers quality before it knows the model: a model it does not
        apply to (random weights, an encoder, no tokenizer) gets a note instead of an error.
    """

    kinds: tuple[str, ...] = KINDS
    text: str = DEFAULT_TEXT
    target_tokens: int = 256
    windows: int = 4
    depths: tuple[float, ...] = DEFAULT_DEPTHS
    seeds: int = 3
    tasks: tuple[str, ...] = ("single",)
    text_encoding: str | None = None
    threshold: float = 0.9
    epsilon: float = 0.01
    fits: int | None = None
    only_if_applicable: bool = False


def _names(text: str, allowed: tuple[str, ...], refusal: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(k.strip().lower() for k in text.split(",") if k.strip()))
    if not names or any(k not in allowed for k in names):
        raise BadInputError(refusal)
    return names


def parse_kinds(text: str) -> tuple[str, ...]:
    """``"loss,needle"`` → ``("loss", "needle")``; one line for anything else."""
    return _names(text, KINDS, f"--quality {text!r}: use loss, needle or loss,needle")


def parse_tasks(text: str) -> tuple[str, ...]:
    """``"single,vt"`` → ``("single", "vt")``; one line for anything else."""
    return _names(text, TASKS, f"--needle-tasks {text!r}: use any of {', '.join(TASKS)} (comma-separated)")


def check_config(cfg: QualityConfig) -> None:
    """Refuse impossible settings with one line (before any model is loaded)."""
    if not cfg.kinds or any(k not in KINDS for k in cfg.kinds):
        raise BadInputError(f"quality kinds must be among {', '.join(KINDS)}")
    if not 1 <= cfg.target_tokens <= 1 << 16:
        raise BadInputError(f"--quality-targets must be from 1 to 65536 tokens, not {cfg.target_tokens}")
    if not 1 <= cfg.windows <= 256:
        raise BadInputError(f"--quality-windows must be from 1 to 256, not {cfg.windows}")
    if not cfg.depths or any(not (isinstance(d, (int, float)) and 0 <= d <= 100) for d in cfg.depths):
        raise BadInputError("--needle-depths: percentages from 0 to 100, e.g. 0,25,50,75,100")
    if not 1 <= cfg.seeds <= 100:
        raise BadInputError(f"--needle-seeds must be from 1 to 100, not {cfg.seeds}")
    if not (math.isfinite(cfg.threshold) and 0 < cfg.threshold <= 1):
        raise BadInputError(f"--effective-threshold must be in (0, 1], not {cfg.threshold}")
    if not (math.isfinite(cfg.epsilon) and cfg.epsilon > 0):
        raise BadInputError(f"--effective-epsilon must be a positive number of nats, not {cfg.epsilon}")
    if not cfg.tasks or any(t not in TASKS for t in cfg.tasks):
        raise BadInputError(f"--needle-tasks: use any of {', '.join(TASKS)}")
    if cfg.text_encoding is not None:
        from ctxscope.core.quality.texts import check_encoding

        check_encoding(cfg.text_encoding)
    if cfg.fits is not None and cfg.fits < 1:
        raise BadInputError(f"--fits must be a positive token count, not {cfg.fits}")
