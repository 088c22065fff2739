"""Sweep panel: lengths, modes, batch, KV-cache strategy, repetition policy, CPU threads; Run and Cancel."""

from __future__ import annotations

import psutil
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from ctxscope.core.errors import BadInputError
from ctxscope.core.lengths import format_size, parse_lengths
from ctxscope.core.results import Settings
from ctxscope.core.spec import SweepConfig
from ctxscope.core.units import plural
from ctxscope.gui.cache_choice import CacheChoice
from ctxscope.gui.quality_options import QualityOptions

QUICK = (("128 → max positions", None), ("128 → 4k", "128:4k:x2"), ("1k → 32k", "1k:32k:x2"),
         ("short: 64,128,256", "64,128,256"))


def config_of(settings: Settings) -> SweepConfig:
    """A stored run's settings as the sweep that repeats it (what the panel shows when a
    run is opened). Plain data: no torch."""
    from ctxscope.core.attention.config import CaptureConfig
    from ctxscope.core.quality.config import DEFAULT_TEXT, QualityConfig

    a, q = settings.attention or {}, settings.quality
    quality = None
    if q and not q.get("note"):
        # What the run asked for, so Run repeats it (the tasks, depths and trials included);
        # a field a run did not record keeps its default.
        asked = {name: kind(q[key]) for name, key, kind in (
            ("tasks", "tasks", tuple), ("depths", "depths", lambda v: tuple(float(d) for d in v)),
            ("seeds", "seeds", int), ("windows", "windows", int), ("target_tokens", "target_tokens", int),
            ("threshold", "threshold", float), ("epsilon", "epsilon", float),
            ("text_encoding", "text_encoding", str)) if q.get(key)}
        # A shipped text by its name; a user's file by the path it was read from (the run
        # records the file's bare name as "text": Run would not find it again).
        from ctxscope.core.quality.texts import TEXTS

        text = q.get("text") or DEFAULT_TEXT
        if text not in TEXTS and q.get("text_source"):
            text = q["text_source"]
        quality = QualityConfig(kinds=tuple(q.get("kinds") or ("loss", "needle")), text=str(text), **asked)
    kv = settings.kv_options or {}  # the group-wise strategies' options, as recorded
    return SweepConfig(lengths=settings.lengths, modes=settings.modes, batch_size=settings.batch_size,
                       cache=settings.cache, kv_group_size=kv.get("group_size"), kv_residual=kv.get("residual"),
                       min_repeats=settings.min_repeats, max_repeats=settings.max_repeats, budget_s=settings.budget_s,
                       threads=settings.threads, continue_after_oom=settings.continue_after_oom,
                       attention=CaptureConfig(tiles=int(a.get("tiles") or 256)) if settings.attention else None,
                       attention_text=str(a.get("text") or "random"), needle=a.get("needle"),
                       needle_depth=float(a.get("needle_depth") or 50.0), quality=quality,
                       breakdown=settings.breakdown)


def default_threads() -> int:
    """The app leaves one core to its own window (torch's pool would otherwise compete
    with the UI thread for every core); the run records the count, and the field shows it."""
    cores = psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
    return max(1, cores - 1)


class SweepPanel(QGroupBox):
    runRequested = Signal(object)  # SweepConfig
    cancelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Sweep", parent)
        self.max_positions: int | None = None
        self.lengths = QLineEdit("128,256,512,1k")
        self.lengths.setToolTip("A list (128,256,1k) or a range START:STOP[:xF|:+N], e.g. 128:32k:x2")
        self.lengths.textChanged.connect(self._on_lengths_text_changed)
        self.quick = QComboBox()
        self.quick.addItem("Quick choice…", None)
        for label, spec in QUICK:
            self.quick.addItem(label, spec or "max")
        self.quick.activated.connect(self._on_quick_activated)
        self.lengths_error = QLabel()
        self.lengths_error.setWordWrap(True)
        self.modes = {name: QCheckBox(name) for name in ("prefill", "decode", "forward")}
        # Until a model is loaded the decoder modes are assumed (the default model is
        # one); set_model() shows only the modes the loaded model has.
        self.modes["prefill"].setChecked(True)
        self.modes["decode"].setChecked(True)
        self.modes["forward"].setToolTip("encoders only: one forward pass over L tokens")
        self.batch = QSpinBox()
        self.batch.setRange(1, 4096)
        self.cache = CacheChoice()
        self.policy = QComboBox()
        self.policy.addItems(["auto (until IQR/median ≤ 5%)", "fixed repeats"])
        self.repeats = QSpinBox()
        self.repeats.setRange(1, 10_000)
        self.repeats.setValue(10)
        self.repeats.setEnabled(False)
        self.policy.currentIndexChanged.connect(lambda i: self.repeats.setEnabled(i == 1))
        self.budget = QDoubleSpinBox()
        self.budget.setRange(0.0, 600.0)
        self.budget.setValue(2.0)
        self.budget.setSuffix(" s")
        self.budget.setToolTip("Per-point time budget for timed calls (after the minimum repeats)")
        self.threads = QSpinBox()
        self.threads.setRange(1, max(1, psutil.cpu_count() or 1))
        self.threads.setValue(default_threads())
        self.threads.setToolTip("CPU threads torch uses for a CPU sweep (recorded in the run; CPU latencies depend "
                                "on it). The default leaves one core to this window.")
        self.continue_after_oom = QCheckBox("Continue after out-of-memory")
        self.attention = QCheckBox("Capture attention maps (separate, untimed pass)")
        self.breakdown = QCheckBox("Breakdown: where the time goes (separate, profiled pass)")
        self.breakdown.setToolTip("After each point's timed passes, one profiled pass splits its time into attention "
                                  "kernel, q/k/v/o projections, MLP, norms, embeddings + LM head, recurrent mixers "
                                  "and other (the Live tab's Breakdown plot)")
        self.attention_tiles = QSpinBox()
        self.attention_tiles.setRange(8, 1024)
        self.attention_tiles.setValue(256)
        self.attention_tiles.setSuffix(" tiles")
        self.attention_text = QComboBox()
        self.attention_text.setEditable(True)
        self.attention_text.addItems(["random", "sample"])
        self.attention_text.setToolTip("random tokens, the shipped sample prose, or a path to a UTF-8 text file")
        self.needle = QLineEdit()
        self.needle.setPlaceholderText("optional needle sentence, marked on every map")
        self.needle_depth = QSpinBox()
        self.needle_depth.setRange(0, 100)
        self.needle_depth.setValue(50)
        self.needle_depth.setSuffix(" % depth")
        self.attention_box = QWidget()
        att = QFormLayout(self.attention_box)
        att.setContentsMargins(16, 0, 0, 0)
        att.addRow("Resolution", self.attention_tiles)
        att.addRow("Text", self.attention_text)
        needle_row = QHBoxLayout()
        needle_row.addWidget(self.needle, 1)
        needle_row.addWidget(self.needle_depth)
        att.addRow("Needle", needle_row)
        self.attention_box.setVisible(False)
        self.attention.toggled.connect(self.attention_box.setVisible)
        self.quality = QualityOptions()
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Run the sweep (Ctrl+R)")
        self.run_button.clicked.connect(self._on_run_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current model call and keep the partial run (Esc)")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancelRequested)

        lengths_row = QHBoxLayout()
        lengths_row.addWidget(self.lengths, 1)
        lengths_row.addWidget(self.quick)
        modes_row = QHBoxLayout()
        for box in self.modes.values():
            modes_row.addWidget(box)
        modes_row.addStretch(1)
        policy_row = QHBoxLayout()
        policy_row.addWidget(self.policy, 1)
        policy_row.addWidget(self.repeats)
        form = QFormLayout()
        form.addRow("Lengths", lengths_row)
        form.addRow("", self.lengths_error)
        form.addRow("Modes", modes_row)
        form.addRow("Batch", self.batch)
        form.addRow("KV cache", self.cache)
        form.addRow("Repeats", policy_row)
        form.addRow("Budget", self.budget)
        form.addRow("CPU threads", self.threads)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.continue_after_oom)
        layout.addWidget(self.breakdown)
        layout.addWidget(self.attention)
        layout.addWidget(self.attention_box)
        layout.addWidget(self.quality)
        layout.addLayout(buttons)
        self._on_lengths_text_changed(self.lengths.text())  # the check is shown from the start

    # -- state ---------------------------------------------------------------------
    def set_model(self, is_decoder: bool, max_positions: int | None) -> None:
        """Offer only the modes the model has (ticking them all when none of them is);
        remember its maximum positions."""
        self.max_positions = max_positions
        applicable = [box for name, box in self.modes.items() if (name == "forward") != is_decoder]
        for box in self.modes.values():
            box.setEnabled(box in applicable)
            box.setVisible(box in applicable)
        if not any(box.isChecked() for box in applicable):
            for box in applicable:
                box.setChecked(True)
        self._on_lengths_text_changed(self.lengths.text())

    def set_config(self, cfg: SweepConfig) -> None:
        """Show ``cfg`` in the fields: what a started sweep (or ``ctxscope gui … --run``)
        measures, so pressing Run again measures the same thing."""
        self.lengths.setText(",".join(format_size(n) for n in cfg.lengths))
        if cfg.modes:
            self.show_modes(cfg.modes)
        self.batch.setValue(cfg.batch_size)
        self.cache.set_choice(cfg.cache, cfg.kv_group_size, cfg.kv_residual)
        fixed = cfg.min_repeats == cfg.max_repeats
        self.policy.setCurrentIndex(1 if fixed else 0)
        if fixed:
            self.repeats.setValue(cfg.min_repeats)
        self.budget.setValue(cfg.budget_s)
        if cfg.threads is not None:
            self.threads.setValue(cfg.threads)
        self.continue_after_oom.setChecked(cfg.continue_after_oom)
        self.attention.setChecked(cfg.attention is not None)
        self.breakdown.setChecked(cfg.breakdown)
        if cfg.attention is not None:
            self.attention_tiles.setValue(int(getattr(cfg.attention, "tiles", 256)))
            self.attention_text.setCurrentText(cfg.attention_text)
            self.needle.setText(cfg.needle or "")
            self.needle_depth.setValue(int(round(cfg.needle_depth)))
        self.quality.set_config(cfg.quality)

    def show_modes(self, modes: tuple[str, ...]) -> None:
        """Tick exactly the modes a sweep measures."""
        for name, box in self.modes.items():
            box.setChecked(name in modes)

    def show_threads(self, threads: int | None) -> None:
        """The thread count a run recorded (a remote host may have more cores than this one)."""
        if threads:
            self.threads.setMaximum(max(self.threads.maximum(), threads))
            self.threads.setValue(threads)

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def config(self) -> SweepConfig:
        """The sweep as configured; raises ``BadInputError`` (also shown by the field)."""
        lengths = parse_lengths(self.lengths.text())
        modes = tuple(name for name, box in self.modes.items() if box.isChecked() and box.isEnabled())
        if not modes:
            raise BadInputError("choose at least one mode")
        fixed = self.policy.currentIndex() == 1
        n = self.repeats.value()
        attention = None
        if self.attention.isChecked():
            from ctxscope.core.attention.config import CaptureConfig

            attention = CaptureConfig(tiles=self.attention_tiles.value())
        group_size, residual = self.cache.options()
        return SweepConfig(lengths=lengths, modes=modes, only_applicable_modes=True, batch_size=self.batch.value(),
                           cache=self.cache.strategy(), kv_group_size=group_size, kv_residual=residual,
                           attention=attention, attention_text=self.attention_text.currentText().strip() or "random",
                           needle=self.needle.text().strip() or None, needle_depth=float(self.needle_depth.value()),
                           # Fixed: min = max repeats, so neither budget nor spread can stop early.
                           min_repeats=n if fixed else 5, max_repeats=n if fixed else 100,
                           budget_s=self.budget.value(), target_rel_iqr=0.05, threads=self.threads.value(),
                           continue_after_oom=self.continue_after_oom.isChecked(), quality=self.quality.config(),
                           breakdown=self.breakdown.isChecked())

    def show_error(self, message: str) -> None:
        self.lengths_error.setStyleSheet("color: #c0392b;")
        self.lengths_error.setText(message)

    def _show_note(self, message: str) -> None:
        self.lengths_error.setStyleSheet("")
        self.lengths_error.setText(message)

    def _on_lengths_text_changed(self, text: str) -> None:
        try:
            lengths = parse_lengths(text)
        except BadInputError as exc:
            self.show_error(str(exc))
            return
        if self.max_positions and lengths[-1] > self.max_positions:
            self.show_error(f"{format_size(lengths[-1])} exceeds the model's {self.max_positions} positions")
        else:
            span = format_size(lengths[0]) if len(lengths) == 1 else f"{format_size(lengths[0])} … {format_size(lengths[-1])}"
            self._show_note(f"{plural(len(lengths), 'length')}: {span}")

    def _on_quick_activated(self, index: int) -> None:
        spec = self.quick.itemData(index)
        if spec == "max":
            top = self.max_positions or 4096
            spec = f"128:{top}:x2" if top >= 128 else str(top)
            if top & (top - 1):  # not a power of two: end exactly at the maximum
                spec += f",{top}"
        if spec:
            self.lengths.setText(spec)
        self.quick.setCurrentIndex(0)

    def _on_run_clicked(self) -> None:
        try:
            cfg = self.config()
        except BadInputError as exc:
            self.show_error(str(exc))
            return
        self.runRequested.emit(cfg)
