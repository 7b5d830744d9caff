"""What the Azure Blob and Azure Files datastores share: options, credentials, retries, errors.

Secrets never leave this layer in text form: every error message is built by us from the
service's error code and passed through `redact`, and SDK exceptions are not chained.
"""
from __future__ import annotations

import random
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import DatastoreError, SpecError

CREDENTIAL_FIELDS = ("account_key", "sas_token", "connection_string")
TUNING_FIELDS = ("max_concurrency", "max_retries", "retry_backoff_seconds", "timeout_seconds",
                 "block_size")
_SIG = re.compile(r"(sig=)[^&\s'\"]+", re.IGNORECASE)
_KEYISH = re.compile(r"(AccountKey=)[^;\s'\"]+", re.IGNORECASE)
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_ROOT_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")  # the service checks the length
INSTALL_HINT = "pip install 'batchai-jupyter[azure]'"


def redact(text: str, secrets: list[str]) -> str:
    for value in sorted(secrets, key=len, reverse=True):
        if value:
            text = text.replace(value, "***")
            text = text.replace(value.lstrip("?"), "***")
    return _KEYISH.sub(r"\1***", _SIG.sub(r"\1***", text))


def parse_connection_string(text: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in str(text).split(";"):
        if "=" in item:
            k, _, v = item.partition("=")
            parts[k.strip().lower()] = v.strip()
    return parts


def validate_azure_options(kind: str, name: str, options: dict[str, Any], container_field: str,
                           service: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Shared option checks for azure_blob (container) and azure_file (share)."""
    opts = dict(options)
    valid = ["account_name", container_field, *CREDENTIAL_FIELDS, "endpoint",
             "create_if_not_exists", *TUNING_FIELDS]
    unknown = sorted(k for k in opts if k not in valid)
    if unknown:
        raise SpecError(unknown[0], f"is not an option of kind={kind!r}", valid)
    given = [k for k in CREDENTIAL_FIELDS if opts.get(k)]
    if len(given) != 1:
        raise SpecError("credential", f"give exactly one of {', '.join(CREDENTIAL_FIELDS)} "
                        f"(got {', '.join(given) or 'none'})", CREDENTIAL_FIELDS)
    credential: dict[str, Any] = {}
    account = opts.get("account_name")
    endpoint = opts.get("endpoint")
    if given[0] == "connection_string":
        parts = parse_connection_string(opts["connection_string"])
        account = account or parts.get("accountname")
        endpoint = endpoint or parts.get(f"{service}endpoint")
        if parts.get("accountkey"):
            credential["account_key"] = parts["accountkey"]
        elif parts.get("sharedaccesssignature"):
            credential["sas_token"] = parts["sharedaccesssignature"]
        else:
            raise SpecError("connection_string", "has neither AccountKey nor SharedAccessSignature")
        if not endpoint and parts.get("endpointsuffix"):
            scheme = parts.get("defaultendpointsprotocol", "https")
            endpoint = f"{scheme}://{account}.{service}.{parts['endpointsuffix']}"
    else:
        credential[given[0]] = str(opts[given[0]]).lstrip("?")
    if not account or not isinstance(account, str):
        raise SpecError("account_name", "is required", "the storage account name")
    if not endpoint and not _ACCOUNT.match(account):
        raise SpecError("account_name", f"{account!r} is not a storage account name",
                        "3-24 lowercase letters and digits")
    container = opts.get(container_field)
    if not container or not isinstance(container, str) or not _ROOT_NAME.match(container):
        raise SpecError(container_field, f"{container!r} is not a valid {container_field} name",
                        "lowercase letters, digits and '-' (Azure wants 3-63 of them)")
    if endpoint is not None and not re.match(r"^https?://", str(endpoint)):
        raise SpecError("endpoint", f"{endpoint!r} is not an http(s) URL",
                        f"like https://<account>.{service}.core.windows.net")
    config: dict[str, Any] = {
        "account_name": account, container_field: container,
        "endpoint": str(endpoint or f"https://{account}.{service}.core.windows.net").rstrip("/"),
        "credential_type": next(iter(credential)),
    }
    for key in TUNING_FIELDS:
        if opts.get(key) is not None:
            value = opts[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise SpecError(key, f"must be a non-negative number, got {value!r}")
            config[key] = value
    return config, credential


def sdk_credential(config: dict[str, Any], credential: dict[str, Any]) -> Any:
    if credential.get("account_key"):
        return {"account_name": config["account_name"], "account_key": credential["account_key"]}
    if credential.get("sas_token"):
        return credential["sas_token"]
    raise DatastoreError("this datastore has no credential in the workspace secrets file; "
                         "register it again with account_key=, sas_token= or connection_string=")


def client_options(config: dict[str, Any], retry_class: type) -> dict[str, Any]:
    """Retries with exponential backoff and timeouts, from the datastore's (non-secret) config."""
    return {"retry_policy": backoff_policy(retry_class, int(config.get("max_retries", 5)),
                                           float(config.get("retry_backoff_seconds", 1.0))),
            "connection_timeout": float(config.get("timeout_seconds", 20)),
            "read_timeout": float(config.get("timeout_seconds", 60)),
            "logging_enable": False}


def backoff_policy(retry_class: type, retries: int, backoff: float) -> Any:
    """The SDK's ExponentialRetry with our base: backoff * 2**attempt, +-20% jitter."""

    class _Backoff(retry_class):
        def get_backoff_time(self, settings: dict[str, Any]) -> float:
            base = backoff * (2 ** max(0, settings["count"] - 1))
            return base * random.uniform(0.8, 1.2)

    # The SDK caps connect/read/status retries at 3 each unless told otherwise, which cuts a
    # backoff meant to ride out a short outage down to about two seconds: give every kind the total.
    return _Backoff(initial_backoff=backoff, increment_base=2, retry_total=retries,
                    retry_connect=retries, retry_read=retries, retry_status=retries)


def sas_expiry(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def sas_start() -> datetime:
    return datetime.now(timezone.utc) - timedelta(minutes=5)  # clock skew between machines


def explain(exc: BaseException, what: str, where: str) -> str:
    """A one-line reason for an Azure SDK error, from its code (never its raw text: URLs)."""
    code = getattr(exc, "error_code", None) or ""
    code = str(getattr(code, "value", code))  # the SDK gives an enum member or a string
    status = getattr(getattr(exc, "response", None), "status_code", None) \
        or getattr(exc, "status_code", None)
    name = type(exc).__name__
    if code in ("ContainerNotFound", "ShareNotFound"):
        return f"the {what} {where} does not exist"
    if code in ("AuthenticationFailed", "AuthorizationFailure") or (status == 403 and not code):
        return (f"authentication failed (403 {code or 'Forbidden'}): the account key or SAS token "
                "is wrong, or the SAS token has expired")
    if code in ("AuthorizationPermissionMismatch", "AuthorizationResourceTypeMismatch"):
        return f"the credential is not allowed to do this ({code})"
    if code in ("BlobNotFound", "ResourceNotFound", "ParentNotFound"):
        return f"not found ({code})"
    if name in ("ServiceRequestError", "ServiceRequestTimeoutError"):
        return "cannot reach the storage endpoint (connection failed after retries)"
    if name in ("ServiceResponseError", "ServiceResponseTimeoutError", "IncompleteReadError"):
        return "the connection to the storage endpoint broke off (after retries)"
    if code:
        return f"the service refused it: {code} (HTTP {status})"
    if status:
        return f"HTTP {status} ({name})"
    return name
