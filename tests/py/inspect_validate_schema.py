"""Validate inspect reports against schemas/inspect_report.schema.json.

Usage: inspect_validate_schema.py SCHEMA REPORT.json [REPORT.json ...]
Also checks that the schema itself is a valid Draft 2020-12 schema. Exits non-zero
with the first violation (path and message) of each failing report.
"""

import json
import sys

from jsonschema import Draft202012Validator


def main():
    schema = json.load(open(sys.argv[1]))
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    failed = False
    for path in sys.argv[2:]:
        errors = sorted(validator.iter_errors(json.load(open(path))), key=lambda e: list(e.path))
        for e in errors[:5]:
            failed = True
            print(f"{path}: at {list(e.absolute_path)}: {e.message}", file=sys.stderr)
    if failed:
        sys.exit(1)
    print(f"{len(sys.argv) - 2} report(s) valid")


if __name__ == "__main__":
    main()
