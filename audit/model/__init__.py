"""Our transformer; importing registers it with the transformers Auto classes."""
