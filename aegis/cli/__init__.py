"""Aegis cli package."""
