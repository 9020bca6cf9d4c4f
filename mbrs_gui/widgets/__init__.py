"""Reusable widgets: synchronised image views, split view, bit grid, capacity meter, plots, busy indicator."""
