"""Two-step bulk import of passes: upload a sheet, preview every row's outcome, confirm."""
