"""The Sweep panel's KV-cache strategy (``--cache``): one of the core's strategies, with the
group-wise ones' group size and full-precision residual shown only while int4 or int2 is
chosen (the rest of the time they would be options that do nothing)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

# Torch-free (its transformers imports are inside functions): the panel may read it.
from ctxscope.core.measure.kv_cache import DEFAULT_GROUP_SIZE, DEFAULT_RESIDUAL, GROUP_WISE, STRATEGIES

TIPS = {"dynamic": "transformers' default DynamicCache: grows by concatenation",
        "static": "StaticCache, preallocated for L + 1 tokens (lengths below a sliding window)",
        "fp8": "QuantizedCache(backend=fp8): keys and values in float8 e4m3, one scale per layer tensor "
               "(full-attention models; runs on CPU)",
        "int4": "QuantizedCache, 4 bits per value with a scale and zero-point per group (full-attention models; "
                "needs optimum-quanto or hqq)",
        "int2": "QuantizedCache, 2 bits per value with a scale and zero-point per group (full-attention models; "
                "needs optimum-quanto or hqq)",
        "offload": "DynamicCache(offloading=True): layers wait in host memory (a CUDA device only)"}


class CacheChoice(QWidget):
    """A strategy combo; below it, for int4 / int2 only, groups and residual."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox()
        for i, name in enumerate(STRATEGIES):
            self.combo.addItem(name, name)
            self.combo.setItemData(i, TIPS.get(name, name), Qt.ItemDataRole.ToolTipRole)
        self.combo.setToolTip("The KV-cache strategy every point is measured with (recorded in the run); "
                              "a strategy the model cannot use is refused, with the reason, before it loads")
        self.group_size = QSpinBox()
        self.group_size.setRange(1, 4096)
        self.group_size.setValue(DEFAULT_GROUP_SIZE)
        self.group_size.setToolTip("Values per quantization group (one scale and zero-point each)")
        self.residual = QSpinBox()
        self.residual.setRange(0, 1 << 20)
        self.residual.setValue(DEFAULT_RESIDUAL)
        self.residual.setSuffix(" tokens")
        self.residual.setToolTip("The newest tokens kept in full precision until they are flushed into the "
                                 "quantized part")
        self.group_box = QWidget()
        row = QHBoxLayout(self.group_box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Groups of"))
        row.addWidget(self.group_size)
        row.addWidget(QLabel("Residual"))
        row.addWidget(self.residual, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo)
        layout.addWidget(self.group_box)
        self.combo.currentIndexChanged.connect(self._on_combo_current_index_changed)
        self._on_combo_current_index_changed(self.combo.currentIndex())

    def strategy(self) -> str:
        return str(self.combo.currentData())

    def options(self) -> tuple[int | None, int | None]:
        """(group size, residual) for a group-wise strategy, else ``(None, None)``: the
        core refuses group-wise options given to any other strategy."""
        if self.strategy() not in GROUP_WISE:
            return None, None
        return self.group_size.value(), self.residual.value()

    def set_choice(self, strategy: str, group_size: int | None = None, residual: int | None = None) -> None:
        """Show ``strategy`` (and its options; ``None``: transformers' defaults). A name this
        app does not offer, from a run made elsewhere, is shown as it is (Run then refuses it
        in one line) rather than as a strategy the run did not use."""
        index = self.combo.findData(strategy)
        if index < 0:
            self.combo.addItem(strategy, strategy)
            index = self.combo.count() - 1
        self.combo.setCurrentIndex(index)
        self.group_size.setValue(DEFAULT_GROUP_SIZE if group_size is None else group_size)
        self.residual.setValue(DEFAULT_RESIDUAL if residual is None else residual)

    def _on_combo_current_index_changed(self, index: int) -> None:
        self.group_box.setVisible(self.strategy() in GROUP_WISE)
