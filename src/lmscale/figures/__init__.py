"""Every figure of a study, drawn with seaborn over matplotlib."""
