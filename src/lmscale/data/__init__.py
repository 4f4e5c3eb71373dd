"""The data stages: corpus splits, the tokenizer, token streams."""
