#!/usr/bin/env python3
"""Resolves flags through the real OpenFeature Python SDK and its OFREP provider (not our code).

Usage: ofrep_client.py BASE_URL API_KEY TENANT
Prints one JSON object: for each flag asked, its value, reason, variant and error code.
"""
import json
import sys

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

base_url, key, tenant = sys.argv[1:4]
api.set_provider(OFREPProvider(base_url, headers_factory=lambda: {"X-API-Key": key}))
client = api.get_client()
context = EvaluationContext(targeting_key="user-1", attributes={"tenant": tenant})


def details(result):
    return {
        "value": result.value,
        "reason": str(result.reason.value if hasattr(result.reason, "value") else result.reason),
        "variant": result.variant,
        "error": result.error_code.value if result.error_code else None,
    }


print(json.dumps({
    "boolean": details(client.get_boolean_details("ai_module_enabled", False, context)),
    "string": details(client.get_string_details("support_tier", "none", context)),
    "integer": details(client.get_integer_details("max_projects", -1, context)),
    "float": details(client.get_float_details("storage_quota_gb", -1.0, context)),
    "object": details(client.get_object_details("dashboard", {}, context)),
    "missing": details(client.get_boolean_details("no_such_flag", False, context)),
    "no_tenant": details(client.get_boolean_details("ai_module_enabled", False, EvaluationContext("user-1"))),
}))
