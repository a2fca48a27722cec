"""Validates JSON documents against a JSON Schema (draft 2020-12).

usage: validate.py SCHEMA [--lines] < input
  without --lines: stdin is one JSON document; with --lines: one document per line.
Prints one line per invalid document and exits 1 if any is invalid; exits 0 otherwise.
"""
import json
import sys

from jsonschema import Draft202012Validator


def main():
    schema = json.load(open(sys.argv[1]))
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    text = sys.stdin.read()
    docs = [l for l in text.splitlines() if l.strip()] if "--lines" in sys.argv[2:] else [text]
    if not docs:
        print("no documents", file=sys.stderr)
        sys.exit(1)
    bad = 0
    for n, doc in enumerate(docs, 1):
        try:
            value = json.loads(doc)
        except json.JSONDecodeError as e:
            print(f"document {n}: not JSON: {e}", file=sys.stderr)
            bad += 1
            continue
        for err in validator.iter_errors(value):
            print(f"document {n}: {'/'.join(map(str, err.absolute_path))}: {err.message}", file=sys.stderr)
            bad += 1
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
