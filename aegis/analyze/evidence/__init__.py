"""Evidence several ecosystems share: install-script analysis and the vulnerability index."""
