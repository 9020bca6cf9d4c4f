"""Live line plots (pyqtgraph) with named curves, a legend and theme-aware colours."""
from __future__ import annotations

import pyqtgraph as pg

from ..theme import PALETTES, current

#: Curve colours that read well on both themes.
COLORS = ("#3daee9", "#e5534b", "#4caf50", "#d9a441", "#a371f7", "#8a9299")


class LivePlot(pg.PlotWidget):
    """``plot.add(name, x, y)`` appends a point to the curve ``name`` (created on first use)."""

    def __init__(self, title: str, x_label: str, y_label: str, log_y: bool = False, legend: bool = True,
                 parent=None):
        super().__init__(parent)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.data: dict[str, tuple[list[float], list[float]]] = {}
        self.setTitle(title)
        self.setLabel("bottom", x_label)
        self.setLabel("left", y_label)
        self.showGrid(x=True, y=True, alpha=0.25)
        self.setLogMode(y=log_y)
        self.legend = self.addLegend(offset=(-10, 10)) if legend else None
        self.setMinimumHeight(160)
        self.apply_theme()

    def apply_theme(self) -> None:
        palette = PALETTES[current()]
        self.setBackground(palette["plot_bg"])
        for axis in ("left", "bottom"):
            self.getAxis(axis).setPen(palette["plot_fg"])
            self.getAxis(axis).setTextPen(palette["plot_fg"])
        self.getPlotItem().titleLabel.setText(self.getPlotItem().titleLabel.text, color=palette["plot_fg"])
        if self.legend is not None:  # the legend's text follows the theme too (it was pale grey on white)
            self.legend.setLabelTextColor(palette["plot_fg"])
            self.legend.setBrush(pg.mkBrush(palette["plot_bg"] + "c0"))

    def curve(self, name: str, symbol: str | None = None) -> pg.PlotDataItem:
        if name not in self.curves:
            color = COLORS[len(self.curves) % len(COLORS)]
            self.curves[name] = self.plot([], [], name=name, pen=pg.mkPen(color, width=2), symbol=symbol,
                                          symbolBrush=color, symbolPen=None, symbolSize=6)
            self.data[name] = ([], [])
        return self.curves[name]

    def add(self, name: str, x: float, y: float, symbol: str | None = None) -> None:
        self.curve(name, symbol)
        xs, ys = self.data[name]
        xs.append(float(x))
        ys.append(float(y))

    def set_curve(self, name: str, xs, ys, symbol: str | None = "o") -> None:
        self.curve(name, symbol)
        self.data[name] = (list(map(float, xs)), list(map(float, ys)))
        self.refresh()

    def refresh(self) -> None:
        """Push the appended points to the screen (call at a steady rate, not per point)."""
        for name, (xs, ys) in self.data.items():
            self.curves[name].setData(xs, ys)

    def reset(self) -> None:
        for curve in self.curves.values():
            self.removeItem(curve)
        if self.legend is not None:
            self.legend.clear()
        self.curves.clear()
        self.data.clear()

    def points(self, name: str) -> tuple[list[float], list[float]]:
        return self.data.get(name, ([], []))
