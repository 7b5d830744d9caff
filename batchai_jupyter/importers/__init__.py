"""Importers for material users bring from the services this project replaces."""
