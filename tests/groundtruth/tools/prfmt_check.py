"""List every printk format of arch/x86/kernel/cpu/bugs.c (with its pr_fmt
prefix) and say which ones a dmesg filter (grep -iE patterns) misses."""
import re
import sys
from pathlib import Path


def formats(path):
    src = Path(path).read_text()
    macros = dict(re.findall(r'#define\s+(\w+)\s+("(?:[^"\\]|\\.)*")\s*\n', src))
    prefix = ""
    out = []
    printk = (r'#define pr_fmt\(fmt\)[ \t]+([^\n]*)\n|'
              r'\b(pr_(?:info|warn|err|notice|emerg|crit|alert)(?:_once|_ratelimited)?|WARN_ONCE|printk)'
              r'\s*\(([^;]*?)\)\s*;')
    for m in re.finditer(printk, src, re.S):
        if m.group(1) is not None:
            p = re.match(r'"([^"]*)"', m.group(1).strip())
            prefix = p.group(1) if p else ""
            continue
        args = m.group(3)
        # first string literal(s) or macro
        s = re.match(r'\s*((?:"(?:[^"\\]|\\.)*"\s*)+)', args)
        if s:
            fmt = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', s.group(1)))
        else:
            name = re.match(r'\s*(\w+)', args).group(1)
            fmt = macros.get(name, f'"<{name}>"')[1:-1]
        fmt = fmt.replace("\\n", "")
        line = src[: m.start()].count("\n") + 1
        out.append((line, prefix + fmt))
    return out

if __name__ == "__main__":
    path, patterns = sys.argv[1], sys.argv[2:]
    for line, fmt in formats(path):
        hit = any(re.search(p, fmt, re.I) for p in patterns)
        print(("ok   " if hit else "MISS ") + f"{line:5d} {fmt}")
