"""The runtime: train, evaluate and predict with compiled models (imports torch lazily)."""
