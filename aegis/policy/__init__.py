"""Aegis policy package."""
