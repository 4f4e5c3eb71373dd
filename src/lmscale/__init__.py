"""lmscale: language-model scaling studies as a resumable Snakemake workflow."""

__version__ = "0.1.0"
