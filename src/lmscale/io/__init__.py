"""Files, tables, importers and the Hugging Face cache: what every stage reads and writes."""
