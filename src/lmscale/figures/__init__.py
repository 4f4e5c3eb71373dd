"""Every figure of a study, drawn with seaborn over matplotlib.

Figures are files: matplotlib's backend is chosen here, once, and importing any module of this
package runs this first, before that module imports pyplot."""

import matplotlib

matplotlib.use("Agg")  # no display is needed or assumed
