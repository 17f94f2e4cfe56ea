"""Kubernetes API groups, typed loosely on purpose.

The client accepts plain dict bodies (camelCase, exactly as in YAML), which is
how every manifest here is written, but its stubs ask for model objects; these
helpers hand out the API objects as Any so dict bodies type-check.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client


def core(api: client.ApiClient) -> Any:
    return client.CoreV1Api(api)


def apps(api: client.ApiClient) -> Any:
    return client.AppsV1Api(api)


def coordination(api: client.ApiClient) -> Any:
    return client.CoordinationV1Api(api)


def storage(api: client.ApiClient) -> Any:
    return client.StorageV1Api(api)
