"""Chaos tier: faults injected into real runs, hostile and malformed input (issue 10)."""
