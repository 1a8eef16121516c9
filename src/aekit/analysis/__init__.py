"""Analyses built on codes (circuits, embeddings, selection, ...): arrive with later issues."""
