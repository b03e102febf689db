"""Small helpers shared by every layer: errors, atomic file writes, lazy imports, hardware facts."""
