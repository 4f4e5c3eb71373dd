"""Validation loss and downstream tasks: the offline task suite, lm-eval, the Hub prefetch."""
