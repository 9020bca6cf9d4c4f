"""The main window's tabs: Embed, Verify, Train and Models (one module each)."""
