"""The network: its shape, the decoder, its Hugging Face export."""
