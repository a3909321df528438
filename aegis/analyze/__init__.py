"""Aegis analyze package."""
