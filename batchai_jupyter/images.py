"""OCI image references: whether one parses, and which registry it names (Docker's rules).

Standard library only, and imported by spec.py, the job.json importer and the nodes alike.
"""
from __future__ import annotations

import re

__all__ = ["IMAGE_FORMS", "image_problem", "image_registry"]

#: What image= accepts (named in a SpecError).
IMAGE_FORMS = ("[registry[:port]/]name[:tag][@sha256:digest], e.g. 'docker.io/library/python:3.11'",
               "an absolute path to a .sif file (apptainer)",
               "docker:// oras:// library:// URIs (apptainer)")
_IMAGE_SCHEMES = ("docker://", "docker-daemon://", "oras://", "library://", "shub://")
_IMAGE_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REF = re.compile(
    r"^(?:(?P<registry>(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*"
    r"[A-Za-z0-9])?)*(?::[0-9]+)?)/)?"
    rf"(?P<name>{_IMAGE_COMPONENT}(?:/{_IMAGE_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}))?$")


def image_registry(image: str) -> str:
    """The registry host an image reference names (docker.io when it names none), as Docker
    decides: the first component is a registry when it has a '.' or ':' or is 'localhost'."""
    ref = image.split("://", 1)[1] if "://" in image else image
    first, sep, _rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def image_problem(image: str) -> str | None:
    """Why an image reference does not parse, or None when it does."""
    if image.startswith(_IMAGE_SCHEMES):
        rest = image.split("://", 1)[1]
        return None if rest and not any(c.isspace() for c in rest) else "has nothing after the scheme"
    if image.startswith("/"):
        return None if image.endswith(".sif") else "is a path but not a .sif file"
    match = _IMAGE_REF.match(image)
    if match is None:
        return "is not an image reference"
    registry = match.group("registry")
    # Docker reads a first component without '.' or ':' as part of the name: it must be lowercase
    if registry and not ("." in registry or ":" in registry or registry == "localhost") \
            and registry != registry.lower():
        return "is not an image reference (repository names are lowercase)"
    return None
