"""RULER-style retrieval tasks (Hsieh et al. 2024, "RULER: What's the Real Context Size
of Your Long-Context Language Models?", arXiv:2404.06654, §3.1), built on the same real
text as the single needle. One needle, no distractors, a question that repeats the
fact's wording: a 135M model scores at ceiling. These make the grid separate models:

- ``multikey``: 4 needles of one form ("One of the special magic numbers for
  quiet-harbor is: 4829301."), each with its own key; the question asks for one key's
  value, the other three are distractors (a value of theirs returned is a false
  retrieval);
- ``multivalue``: 4 needles with the same key and different values; all 4 asked for;
- ``multiquery``: 4 needles with distinct keys; the question asks for all 4 values;
- ``vt`` (variable tracking): a chain ``VAR X1 = 52817``, ``VAR X2 = VAR X1``, …
  (5 variables, 4 hops) spread through the text; asked for every variable that holds
  the value.

Keys are adjective-noun pairs, values 7-digit numbers, variables 5 capital letters
(RULER's defaults: 4 keys / values / queries, one chain of 4 hops). The needles go at
depths d, d + 25, d + 50, d + 75 (wrapping past 100; the asked key at d; the chain's 5
statements every 20 %, in order, one at d), each moved to the nearest sentence end. Scored by greedy generation: the prompt leaves room for
the answer within the length, so a trial reads at most L tokens.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Any

import numpy as np

from ctxscope.core.quality.needle import encode, snap, take_haystack

NEEDLES = 4
_ADJECTIVES = ("quiet", "amber", "brisk", "coral", "dusky", "eager", "fable", "gentle", "hollow", "ivory", "jolly",
               "keen", "lunar", "misty", "noble", "olive", "plain", "rapid", "silver", "tidal", "umber", "vivid",
               "woven", "young", "zesty", "bold", "calm", "deep", "early", "frosty")
_NOUNS = ("harbor", "meadow", "lantern", "falcon", "orchard", "canyon", "beacon", "thistle", "compass", "glacier",
          "harvest", "island", "juniper", "kettle", "ladder", "marble", "nectar", "otter", "pepper", "quarry",
          "river", "saddle", "tunnel", "valley", "willow", "anchor", "basket", "cobalt", "dagger", "ember")
INSTRUCTION = ("Some special magic numbers are hidden within the following text. Make sure to memorize it. "
               "I will quiz you about the numbers afterwards.\n")
VT_INSTRUCTION = "Memorize and track the chain of variable assignment hidden in the following text.\n"
NEEDLE = " One of the special magic numbers for {key} is: {value}."
ASK_ONE = ("\n\nQuestion: What is the special magic number for {key} mentioned in the text above?\n"
           "Answer: The special magic number for {key} mentioned in the text above is")
ASK_ALL = ("\n\nQuestion: What are all the special magic numbers for {key} mentioned in the text above?\n"
           "Answer: The special magic numbers for {key} mentioned in the text above are")
VT_FIRST, VT_NEXT = " VAR {name} = {value}.", " VAR {name} = VAR {prev}."
VT_ASK = ("\n\nQuestion: Find all variables that are assigned the value {value} in the text above.\n"
          "Answer: According to the chain of variable assignment in the text above, {n} variables are assigned the "
          "value {value}, they are:")
ANSWER_MARGIN = 8  # tokens generation may use beyond twice the expected answer's own


@dataclass(frozen=True, slots=True)
class TaskPrompt:
    """One generated trial: ``ids`` the prompt, ``max_new`` the tokens generation may add
    (``len(ids) + max_new`` is the trial's length), what the answer must and must not
    contain, the key asked about and where each needle starts in ``ids``."""

    ids: np.ndarray
    max_new: int
    expected: tuple[str, ...]
    distractors: tuple[str, ...]
    key: str
    positions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Material:
    instruction: str
    needles: tuple[str, ...]  # in depth order: the first goes at the trial's depth
    question: str
    expected: tuple[str, ...]
    distractors: tuple[str, ...]
    key: str


def _keys(rng: random.Random, n: int) -> list[str]:
    pairs = rng.sample([(a, b) for a in _ADJECTIVES for b in _NOUNS], n)
    return [f"{a}-{b}" for a, b in pairs]


def _values(rng: random.Random, n: int, digits: int = 7) -> list[str]:
    return [str(v) for v in rng.sample(range(10 ** (digits - 1), 10**digits), n)]


def _listed(items: list[str]) -> str:
    return ", ".join(items[:-1]) + f" and {items[-1]}"


def material(task: str, kind: str, rng: random.Random) -> _Material:
    """The needles and question of one trial of ``task`` (``kind`` ``wrong-key``: the
    multikey needles and a question about a fifth key)."""
    if task == "vt":
        names = ["".join(rng.choices(string.ascii_uppercase, k=5)) for _ in range(NEEDLES + 1)]
        while len(set(names)) < len(names):
            names = ["".join(rng.choices(string.ascii_uppercase, k=5)) for _ in range(NEEDLES + 1)]
        value = _values(rng, 1, 5)[0]
        chain = [VT_FIRST.format(name=names[0], value=value)] + [
            VT_NEXT.format(name=b, prev=a) for a, b in zip(names, names[1:])]
        return _Material(VT_INSTRUCTION, tuple(chain), VT_ASK.format(value=value, n=len(names)), tuple(names), (),
                         value)
    keys, values = _keys(rng, NEEDLES + 1), _values(rng, NEEDLES)
    if task == "multivalue":
        needles = tuple(NEEDLE.format(key=keys[0], value=v) for v in values)
        return _Material(INSTRUCTION, needles, ASK_ALL.format(key=keys[0]), tuple(values), (), keys[0])
    needles = tuple(NEEDLE.format(key=k, value=v) for k, v in zip(keys, values))
    if kind == "wrong-key":
        return _Material(INSTRUCTION, needles, ASK_ONE.format(key=keys[NEEDLES]), (), tuple(values), keys[NEEDLES])
    if task == "multiquery":
        return _Material(INSTRUCTION, needles, ASK_ALL.format(key=_listed(keys[:NEEDLES])), tuple(values), (),
                         _listed(keys[:NEEDLES]))
    if task == "multikey":
        return _Material(INSTRUCTION, needles, ASK_ONE.format(key=keys[0]), (values[0],), tuple(values[1:]), keys[0])
    raise ValueError(f"no such task: {task!r}")


def _max_new(tokenizer: Any, m: _Material) -> int:
    # Twice the answer's tokens: a model may restate the question's form ("VAR X = …")
    # around the values it lists; RULER generates 30 to 128 tokens for these tasks.
    shown = list(m.expected or m.distractors[:1])
    return 2 * len(encode(tokenizer, " " + ", ".join(shown) + ".")) + ANSWER_MARGIN


def overhead(tokenizer: Any, task: str, prefix: int = 0) -> int:
    """Tokens of a ``task`` trial besides its haystack (measured on one draw: keys and
    values of one form tokenise to about the same length; the haystack absorbs any
    difference, so a trial is still exactly its length)."""
    m = material(task, "grid", random.Random(0))
    return (prefix + len(encode(tokenizer, m.instruction)) + sum(len(encode(tokenizer, n)) for n in m.needles)
            + len(encode(tokenizer, m.question)) + _max_new(tokenizer, m) + NEEDLES)


def _depths(depth: float, count: int, ordered: bool) -> list[float]:
    """``count`` depths evenly spaced, one at ``depth`` (wrapping past 100). ``ordered``
    (the variable chain): in document order, so each assignment follows the one it reads."""
    spread = [d - 100 if d > 100 else d for d in (depth + i * 100 / count for i in range(count))]
    return sorted(spread) if ordered else spread


def build(task: str, kind: str, ids: np.ndarray, ends: np.ndarray, tokenizer: Any, prefix: np.ndarray, *,
          length: int, depth: float | None, seed: int, seeds: int, sweep_seed: int) -> TaskPrompt:
    """A trial of ``length`` tokens (prompt + room for the answer), or for ``adjacent``
    the needles right before the question with no haystack."""
    rng = random.Random(f"{sweep_seed}:{task}:{kind}:{length}:{depth}:{seed}")
    m = material(task, kind, rng)
    head = np.concatenate([prefix, encode(tokenizer, m.instruction)])
    needles = [encode(tokenizer, n) for n in m.needles]
    question = encode(tokenizer, m.question)
    max_new = _max_new(tokenizer, m)
    if kind == "adjacent":
        body = np.concatenate(needles)
        starts = tuple(int(len(head) + sum(len(n) for n in needles[:i])) for i in range(len(needles)))
        return TaskPrompt(np.concatenate([head, body, question]), max_new, m.expected, m.distractors, m.key, starts)
    haystack = length - len(head) - sum(len(n) for n in needles) - len(question) - max_new
    if haystack < 1:
        raise ValueError(f"length {length} leaves no room for a haystack")
    offset, hay = take_haystack(ids, haystack, seed, seeds)
    # wrong-key spreads its needles evenly; the others start at the trial's depth
    depths = _depths(12.5 if depth is None else depth, len(needles), ordered=task == "vt")
    at = [snap(ends, offset, haystack, round(d / 100 * haystack)) for d in depths]
    order = sorted(range(len(needles)), key=lambda i: (at[i], i))
    parts, begin, cursor, position = [head], [0] * len(needles), 0, len(head)
    for i in order:
        parts.append(hay[cursor:at[i]])
        position += at[i] - cursor
        begin[i] = position
        parts.append(needles[i])
        position += len(needles[i])
        cursor = at[i]
    parts += [hay[cursor:], question]
    return TaskPrompt(np.concatenate(parts), max_new, m.expected, m.distractors, m.key, tuple(begin))

