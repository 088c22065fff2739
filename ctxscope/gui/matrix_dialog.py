"""Run → Compare kernels and dtypes…: pick attention kernels, dtypes, KV-cache strategies
and RoPE scalings; the runner then measures every combination on one loaded copy per dtype
and scaling and opens the comparison."""

from __future__ import annotations

from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QGroupBox, QLabel, QLineEdit, QVBoxLayout,
                               QWidget)

DTYPE_CHOICES = ("float32", "float16", "bfloat16")
#: core.kv_cache.STRATEGIES, spelled here: the dialog must not import the core's torch side.
CACHE_CHOICES = ("dynamic", "static", "fp8", "int4", "int2", "offload")


class MatrixDialog(QDialog):
    def __init__(self, kernels: list[str], *, current_kernel: str | None, current_dtype: str,
                 current_cache: str = "dynamic", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare kernels and dtypes")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("The model in the panel is swept once per combination with the sweep settings;\n"
                                "it is loaded once per dtype. The comparison opens when all are done."))
        self.kernels = self._group(layout, "Attention kernels", kernels,
                                   {current_kernel or "sdpa", "eager"} & set(kernels) or set(kernels[:1]))
        self.dtypes = self._group(layout, "Dtypes", list(DTYPE_CHOICES),
                                  {current_dtype} if current_dtype in DTYPE_CHOICES else {DTYPE_CHOICES[0]})
        self.caches = self._group(layout, "KV-cache strategies (fp8, int4, int2: full-attention models; offload: GPU)",
                                  list(CACHE_CHOICES),  # the Sweep panel's strategy, ticked
                                  {current_cache} if current_cache in CACHE_CHOICES else {"dynamic"})
        rope = QGroupBox("RoPE scaling (beyond the trained length)")
        inner = QVBoxLayout(rope)
        self.rope = QLineEdit("none")
        self.rope.setPlaceholderText("none,linear:2,dynamic:2,yarn:2")
        self.rope.setToolTip("Comma-separated: none (the model as trained), linear:F, dynamic:F, yarn:F. Models with "
                             "rotary position embeddings only; lengths past the trained one need Allow beyond max.")
        self.rope.textChanged.connect(self._update)
        inner.addWidget(self.rope)
        layout.addWidget(rope)
        self._cluster_box(layout)
        self.count = QLabel()
        layout.addWidget(self.count)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._update()

    def _group(self, layout: QVBoxLayout, title: str, names: list[str], ticked: set[str]) -> list[QCheckBox]:
        box = QGroupBox(title)
        inner = QVBoxLayout(box)
        boxes = []
        for name in names:
            check = QCheckBox(name)
            check.setChecked(name in ticked)
            check.toggled.connect(self._update)
            inner.addWidget(check)
            boxes.append(check)
        layout.addWidget(box)
        return boxes

    def _cluster_box(self, layout: QVBoxLayout) -> None:
        import importlib.util

        box = QGroupBox("Where")
        inner = QVBoxLayout(box)
        self.on_cluster = QCheckBox("Run on cluster (Ray): every combination in parallel, one GPU each")
        self.cluster_address = QLineEdit("auto")
        self.cluster_address.setPlaceholderText("auto, ray://head:10001 or head:6379")
        self.cluster_address.setToolTip("auto: the Ray cluster this machine belongs to ($RAY_ADDRESS, `ray start`), "
                                        "else a local one; the model path must exist on the cluster's nodes")
        self.cluster_address.setEnabled(False)
        self.on_cluster.toggled.connect(self.cluster_address.setEnabled)
        inner.addWidget(self.on_cluster)
        inner.addWidget(self.cluster_address)
        if importlib.util.find_spec("ray") is None:
            self.on_cluster.setEnabled(False)
            inner.addWidget(QLabel('Ray is not installed: pip install "ray[client]>=2.60"'))
        layout.addWidget(box)

    def cluster(self) -> str | None:
        """The Ray cluster's address when *Run on cluster* is ticked, else ``None``."""
        if not self.on_cluster.isChecked():
            return None
        return self.cluster_address.text().strip() or "auto"

    def choice(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(dtypes, kernels) ticked, in display order."""
        return (tuple(c.text() for c in self.dtypes if c.isChecked()),
                tuple(c.text() for c in self.kernels if c.isChecked()))

    def cache_choice(self) -> tuple[str, ...]:
        """The KV-cache strategies ticked, in display order."""
        return tuple(c.text() for c in self.caches if c.isChecked())

    def ropes(self) -> tuple[str | None, ...]:
        """The RoPE scalings typed, canonical (``None``: as trained); raises
        :class:`~ctxscope.core.errors.BadInputError` for a malformed one."""
        from ctxscope.core.model.rope import canonical

        items = [x.strip() for x in self.rope.text().split(",") if x.strip()] or ["none"]
        return tuple(dict.fromkeys(canonical(x) for x in items))

    def _update(self) -> None:
        from ctxscope.core.errors import BadInputError

        dtypes, kernels = self.choice()
        try:
            ropes: tuple[str | None, ...] = self.ropes()
            problem = ""
        except BadInputError as exc:
            ropes, problem = (), str(exc)
        n = len(dtypes) * len(kernels) * len(ropes) * len(self.cache_choice())
        self.count.setText(problem or (f"{n} run{'s' if n != 1 else ''}" if n else
                                       "Tick at least one kernel, one dtype and one cache strategy."))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(n > 0)
