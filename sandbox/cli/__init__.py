"""The box's commands (`python -m sandbox`): run, layers, microvm, doctor. Other layers compose
them with their own (service.cli is the `stockade` console script)."""
