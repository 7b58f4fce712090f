"""Widgets as plain objects: each holds `self.widget` when interactive and renders a static
table or figure otherwise (papermill, nbval, a terminal), so nothing hangs or errors there."""
