"""Aegis analyze evidence package."""
