#!/usr/bin/env bash
# Rebuild ../../FINDINGS.md: the hand-written text (head.md, ...) around the generated tables.
set -eu
cd "$(dirname "$0")/../.."
{ cat tools/findings/head.md; python3 tools/keytable.py linux-6.12-tcg.json; cat tools/findings/mid.md
  python3 tools/keytable.py linux-6.1-tcg.json; cat tools/findings/appendix.md
  python3 tools/tables.py linux-6.12-tcg.json --level '####'; cat tools/findings/appendix2.md
  python3 tools/tables.py linux-6.1-tcg.json --level '####'; } > FINDINGS.md
