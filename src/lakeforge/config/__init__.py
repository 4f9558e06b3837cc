"""Typed, validated configuration: Hydra composition of conf/ over dataclass schemas."""
