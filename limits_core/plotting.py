"""Charts of simulations, drawn with matplotlib (the ``plot`` extra), imported only when used."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from limits_core.errors import ConfigurationError
from limits_core.rate import Rate
from limits_core.simulation import Simulation

__all__ = ["import_pyplot", "plot_simulations"]


def import_pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend, or a
    :class:`~limits_core.ConfigurationError` naming the extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigurationError(
            "plotting needs matplotlib: pip install 'limits-core[plot]'"
        ) from None
    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


def plot_simulations(
    runs: Sequence[tuple[str, Simulation]], rate: Rate, path: str | Path, title: str
) -> Path:
    """Draw admitted and denied requests per bin, one panel per algorithm; write a PNG."""
    plt = import_pyplot()
    figure, axes = plt.subplots(
        len(runs), 1, sharex=True, squeeze=False, figsize=(10, 1.2 + 2.2 * len(runs))
    )
    for ax, (name, run) in zip(axes[:, 0], runs, strict=True):
        bin_seconds = run.bin_us / 1_000_000
        x = [i * bin_seconds for i in range(len(run.sent))]
        ax.bar(x, run.admitted, width=bin_seconds, align="edge", color="#2a9d4b", label="admitted")
        ax.bar(
            x,
            run.denied,
            width=bin_seconds,
            align="edge",
            bottom=run.admitted,
            color="#d1495b",
            label="denied",
        )
        ax.axhline(
            rate.limit * run.bin_us / rate.period_us,
            color="black",
            linestyle=":",
            linewidth=1,
            label="the rate, per bin",
        )
        peak = run.max_admitted_within(rate.period_us)
        ax.set_title(
            f"{name}: {sum(run.admitted)} admitted, at most {peak} in any "
            f"{rate.period:g} s (limit {rate.limit})",
            fontsize=10,
            loc="left",
        )
        ax.set_ylabel(f"per {bin_seconds:g} s")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("seconds (virtual time)")
    figure.suptitle(title)
    figure.tight_layout()
    out = Path(path)
    figure.savefig(out, format="png", dpi=100)
    plt.close(figure)
    return out
