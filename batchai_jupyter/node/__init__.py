"""Code that runs on compute nodes. Imports only the standard library and the package core."""
