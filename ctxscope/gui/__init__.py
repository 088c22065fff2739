"""The desktop app: PySide6 + pyqtgraph over the headless core. Nothing outside this
package imports Qt."""
