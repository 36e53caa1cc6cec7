"""Training CLR-Face: face preparation, degradations, losses, the staged training loop, export."""
