"""The analysis stages: task selection, the fits, backtest, predictions, per-task laws."""
