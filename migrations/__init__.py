"""Numbered SQL migrations (NNNN_name.sql), applied in order by app.migrate; a package so they ship in the wheel."""
