"""Aegis audit package."""
