#!/usr/bin/env python3
"""Validate verifier reports against report.schema.json (JSON Schema 2020-12).

Usage: verifier_validate_reports.py SCHEMA REPORT.json [REPORT.json ...]
Prints one line per report; exits 1 when any report does not validate.
"""
import json
import sys

from jsonschema import Draft202012Validator


def main() -> int:
    schema = json.load(open(sys.argv[1]))
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    bad = 0
    for path in sys.argv[2:]:
        errors = sorted(validator.iter_errors(json.load(open(path))), key=lambda e: list(e.path))
        for e in errors:
            print(f"{path}: {'/'.join(str(p) for p in e.path)}: {e.message}")
        bad += bool(errors)
        if not errors:
            print(f"{path}: valid")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
