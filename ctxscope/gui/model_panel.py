"""Model panel: choose a source and how to load it; shows what was loaded."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QVBoxLayout, QWidget)

from ctxscope.core.machine.device_choices import DeviceChoice
from ctxscope.core.events import LoadedSummary
from ctxscope.core.model.kernels import usable_kernels
from ctxscope.core.model.presets import preset_names
from ctxscope.core.results import ModelInfo, RunHeader
from ctxscope.core.spec import DTYPES, ModelSpec
from ctxscope.remote.ssh import RemoteTarget
from ctxscope.report.fmt import fmt_bytes, fmt_count, fmt_layer_mix

def _shape(m: ModelInfo) -> str:
    window = f", sliding window {m.sliding_window}" if m.sliding_window else ""
    active = f" ({fmt_count(m.active_params)} active per token)" if m.active_params else ""
    mix = fmt_layer_mix(m.layer_kinds)
    heads = f"{m.num_heads} heads / {m.num_kv_heads} KV heads × {m.head_dim}{window}" if m.num_heads else "no attention"
    return (f"<b>{escape(m.architecture)}</b> — {fmt_count(m.params)} parameters{active}, {m.num_layers} layers, "
            f"{heads}<br>" + (f"layers: {escape(mix)}<br>" if mix else ""))


def _random_note(m: ModelInfo) -> str:
    # One line here; the window's yellow bar says it for the runs shown (once, not twice).
    return ("<br><span style='color: #8a6d3b'>random weights (architecture only): latency and memory are real, "
            "outputs are not</span>" if m.random_weights else "")


RANDOM_BANNER = "Random weights: latency and memory are valid; attention maps are not meaningful."
THIS_MACHINE = "this machine"


class ModelPanel(QGroupBox):
    """Emits ``loadRequested(ModelSpec)``; the main window decides what to do with it."""

    loadRequested = Signal(object)
    gpuChanged = Signal(object)  # tuple of GPU UUIDs the chosen device means (empty: none)
    targetChanged = Signal(object)  # a RemoteTarget (Run on user@host) or None (this machine)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self.source = QComboBox()
        self.source.setEditable(True)
        self.source.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.source.addItems([f"preset:{n}" for n in preset_names()] + ["demo:smollm2", "demo:minilm"])
        self.source.setToolTip("preset:NAME, demo:NAME, a Hub id (org/name), a local directory or a config.json")
        self.source.lineEdit().setPlaceholderText("preset, Hub id, directory or config.json")
        browse_dir = QPushButton("Folder…")
        browse_dir.setToolTip("Open a local checkpoint directory")
        browse_dir.clicked.connect(self._on_browse_dir_clicked)
        browse_cfg = QPushButton("config.json…")
        browse_cfg.setToolTip("Build an architecture from a config.json (random weights)")
        browse_cfg.clicked.connect(self._on_browse_config_clicked)
        self.browse_buttons = (browse_dir, browse_cfg)
        self.run_on = QComboBox()
        self.run_on.setEditable(True)
        self.run_on.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.run_on.addItem(THIS_MACHINE)
        self.run_on.lineEdit().setPlaceholderText("this machine, or user@host over SSH")
        self.run_on.setToolTip("Where sweeps run: this machine, or an SSH destination (user@host or an ~/.ssh/config "
                               "alias) with ctxscope installed; runs come back into this window and history")
        self.remote_python = QLineEdit()
        self.remote_python.setPlaceholderText("remote Python, if ctxscope is not on its PATH")
        self.remote_note = QLabel()
        self.remote_note.setWordWrap(True)
        self.remote_note.setStyleSheet("background: #cfe2ff; color: #084298; padding: 4px; border-radius: 3px;")
        self.run_on.currentTextChanged.connect(self._on_target_edited)
        self.remote_python.textChanged.connect(self._on_target_edited)
        self.dtype = QComboBox()
        self.dtype.addItems(list(DTYPES))
        self.device = QComboBox()
        self.device.addItem("auto (best available)", "auto")
        self.device.addItem("cpu", "cpu")
        self.choices: dict[str, DeviceChoice] = {}
        self.device.currentIndexChanged.connect(lambda _i: self.gpuChanged.emit(self.gpu_uuids()))
        self.attn = QComboBox()
        self.attn.addItem("default", None)
        for name in usable_kernels():  # the core decides what can run here
            self.attn.addItem(name, name)
        self.random_weights = QCheckBox("Random weights (architecture only)")
        self.trust_remote_code = QCheckBox("Trust remote code")
        self.trust_remote_code.setToolTip("Runs Python code from the model's repository. Only for sources you trust.")
        self.trust_warning = QLabel("⚠ Runs the model repository's own Python code on this machine.")
        self.trust_warning.setStyleSheet("color: #c0392b;")
        self.trust_warning.setVisible(False)
        self.trust_remote_code.toggled.connect(self.trust_warning.setVisible)
        self.load_button = QPushButton("Load")
        self.load_button.clicked.connect(self._on_load_clicked)
        self.info = QLabel("No model loaded. Presets are real architectures with random weights (no download): "
                           "latency and memory are real, outputs are not. Press Run, or open a local checkpoint "
                           "with “Folder…”")
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        row = QHBoxLayout()
        row.addWidget(browse_dir)
        row.addWidget(browse_cfg)
        row.addStretch(1)
        self.source.setMinimumContentsLength(18)
        self.source.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        for combo in (self.dtype, self.attn):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.device.setMinimumContentsLength(18)
        self.device.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        form = QFormLayout()
        form.addRow("Run on", self.run_on)
        form.addRow("", self.remote_python)
        form.addRow("Source", self.source)
        form.addRow("", row)
        form.addRow("Dtype", self.dtype)
        form.addRow("Device", self.device)
        form.addRow("Attention", self.attn)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.remote_note)
        layout.addWidget(self.random_weights)
        layout.addWidget(self.trust_remote_code)
        layout.addWidget(self.trust_warning)
        layout.addWidget(self.load_button)
        layout.addWidget(self.info)
        self._on_target_edited()

    # -- state ---------------------------------------------------------------------
    def spec(self) -> ModelSpec:
        source = self.source.currentText().strip()
        return ModelSpec(source=source, dtype=self.dtype.currentText(), device=self.device.currentData() or "auto",
                         attn_implementation=self.attn.currentData(), random_weights=self.random_weights.isChecked(),
                         trust_remote_code=self.trust_remote_code.isChecked())

    def set_spec(self, spec: ModelSpec) -> None:
        self.source.setEditText(spec.source)
        self.dtype.setCurrentText(spec.dtype)
        index = self.device.findData(spec.device)
        if index < 0:
            self.device.addItem(spec.device, spec.device)
            index = self.device.count() - 1
        self.device.setCurrentIndex(index)
        attn = self.attn.findData(spec.attn_implementation)
        self.attn.setCurrentIndex(max(0, attn))
        self.random_weights.setChecked(spec.random_weights)
        self.trust_remote_code.setChecked(spec.trust_remote_code)

    def target(self) -> RemoteTarget | None:
        """Where to run: ``None`` for this machine, else the SSH destination typed (checked
        when a job starts: a bad one fails there in one line, never silently runs here)."""
        host = self.run_on.currentText().strip()
        if not host or host == THIS_MACHINE:
            return None
        return RemoteTarget(host, self.remote_python.text().strip() or None)

    def set_target(self, host: str | None, python: str | None = None) -> None:
        self.remote_python.setText(python or "")
        self.run_on.setEditText(host or THIS_MACHINE)

    def _on_target_edited(self) -> None:
        target = self.target()
        remote = target is not None
        self.remote_python.setVisible(remote)
        self.remote_note.setVisible(remote)
        for button in self.browse_buttons:  # a file picker shows this machine's files, not the remote's
            button.setEnabled(not remote)
        if target is not None:
            self.remote_note.setText(f"Runs on <b>{target.host}</b> over SSH (your keys, agent and ~/.ssh/config; "
                                     "no password is asked or stored). The model path, device and text files are "
                                     f"those of {target.host}; each run loads the model there and comes back here.")
        self.targetChanged.emit(target)

    def set_devices(self, choices: list[DeviceChoice]) -> None:
        current = self.device.currentData()
        self.choices = {c.id: c for c in choices}
        self.device.blockSignals(True)
        self.device.clear()
        for choice in choices:
            self.device.addItem(choice.label, choice.id)
        index = self.device.findData(current)
        self.device.setCurrentIndex(max(0, index))
        self.device.blockSignals(False)
        self.gpuChanged.emit(self.gpu_uuids())

    def gpu_uuids(self) -> tuple[str, ...]:
        """The GPU the chosen device means (auto: the first GPU, as torch picks it)."""
        chosen = self.device.currentData() or "auto"
        if chosen == "auto":
            chosen = next((c for c in self.choices if c.startswith("cuda")), "")
        choice = self.choices.get(chosen)
        return (choice.uuid,) if choice is not None and choice.uuid else ()

    def has_gpu(self) -> bool:
        """Whether the listed devices include a CUDA device."""
        return any(str(self.device.itemData(i) or "").startswith("cuda") for i in range(self.device.count()))

    def set_busy(self, busy: bool) -> None:
        self.load_button.setEnabled(not busy)

    def set_loading(self, source: str) -> None:
        self.info.setText(f"Loading {source} …")

    def set_loaded(self, summary: LoadedSummary) -> None:
        m = summary.info
        self.info.setText(_shape(m) + f"max positions {m.max_positions or '?'}, weights "
                          f"{fmt_bytes(summary.weights_bytes)} on {summary.device} ({summary.dtype}, "
                          f"{summary.attn_implementation})" + _random_note(m))

    def show_run_model(self, header: RunHeader) -> None:
        """The model of a run opened from the history or a file, in the fields (Run
        measures it again) and the description: the panel described the last model loaded,
        whatever run the plots showed."""
        m, s = header.model, header.settings
        inherent = m.source.startswith("preset:") or m.source.endswith(".json")  # random by nature, not by choice
        self.set_spec(ModelSpec(source=m.source, dtype=s.dtype, device=s.device, attn_implementation=s.attn_implementation,
                                random_weights=m.random_weights and not inherent))
        host = header.environment.host
        self.info.setText(_shape(m) + f"max positions {m.max_positions or '?'}; measured on "
                          f"{escape(host) if host else s.device} ({s.dtype}, {escape(s.attn_implementation)}) in run "
                          f"{escape(header.id)}<br><i>shown from the run: not loaded here (Load or Run loads it)</i>"
                          + _random_note(m))

    def add_note(self, text: str) -> None:
        """A warning about the loaded model, under its description (until the next load)."""
        self.info.setText(f"{self.info.text()}<br><span style='color: #c0392b'>⚠ {escape(text)}</span>")

    def _on_load_clicked(self) -> None:
        self.loadRequested.emit(self.spec())

    def _on_browse_dir_clicked(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a model directory")
        if path:
            self.source.setEditText(path)

    def _on_browse_config_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a config.json", filter="Model config (*.json)")
        if path:
            self.source.setEditText(path)
