"""apt's evidence: .deb contents, Release signatures and freshness, sources, apt config."""
