#!/usr/bin/env python3
"""Reads `perf script -F tid,ip,sym,dso` output and splits Asterisk's CPU samples into the
parts of a device state change (see docs/benchmarks-fanout.md). Debian's Asterisk is stripped
of its static symbols: those frames show as addresses, so the parts are recognised by the
exported functions (and the module's, which keeps its symbols) on each stack.

usage: stacks.py FILE [--tree N]   (--tree prints the N heaviest stack heads per part)
"""
import sys
from collections import Counter, defaultdict

# (part, test) in priority order: the first part whose test holds for a stack takes it.
def has(*names):
    return lambda s: any(n in s for n in names)

def all_of(*tests):
    return lambda s: all(t(s) for t in tests)

PARTS = [
    ("module: publish: topic pool lookup (stasis_topic_pool_topic_exists)",
     all_of(has("res_deviceuser"), has("stasis_topic_pool_topic_exists"))),
    ("module: publish: stasis dispatch of DeviceUser: (to every device state subscriber)",
     all_of(has("res_deviceuser"), has("ast_publish_device_state_full", "stasis_publish"))),
    ("module: provider (asked by the hint engine)",
     has("devstate::provider::run", "Instance::provide")),
    ("module: subscription callback, the rest",
     has("follow::on_message", "follow::on_any_message")),
    ("module: other", has("res_deviceuser")),
    ("hint: ExtensionStatus lookup of the hint (ast_get_hint: walk of the context)", has("ast_get_hint")),
    ("Setvar: topic pool lookups (stasis_topic_pool_get_topic)",
     all_of(has("ast_func_write"), has("stasis_topic_pool_get_topic"))),
    ("Setvar: AstDB (func_devstate's ast_db_put)", all_of(has("ast_func_write"), has("ast_db_put"))),
    ("Setvar: the rest (cache update, aggregate, dispatch)", has("ast_func_write")),
    ("topic pool lookups, other callers", has("stasis_topic_pool_get_topic", "stasis_topic_pool_topic_exists")),
    ("device state queries (ast_device_state, cache)", has("ast_device_state", "stasis_cache_get_by_eid")),
    ("AMI: writes to sessions (ast_iostream_write)", has("ast_iostream_write")),
    ("AMI: event built and queued (manager event)", has("__ast_manager_event_multichan", "ast_manager_event_blob_create", "ast_str_append_va")),
    ("AMI: reading and parsing actions", has("ast_iostream_read", "astman_get_header", "ast_wait_for_input")),
    ("AstDB thread (sqlite)", has("libsqlite3")),
    ("taskprocessor/stasis machinery", has("ast_taskprocessor_execute", "ast_taskprocessor_push", "stasis_publish", "__ao2")),
    ("kernel: scheduling, futex, signals", has("schedule", "futex", "signal")),
]

def main():
    path = sys.argv[1]
    tree = int(sys.argv[sys.argv.index("--tree") + 1]) if "--tree" in sys.argv else 0
    parts = Counter()
    heads = defaultdict(Counter)
    total = 0
    with open(path, errors="replace") as f:
        frames = []
        def flush():
            nonlocal total
            if not frames:
                return
            s = " ".join(frames)
            if "asterisk" not in s and "ld-linux" not in s and "res_deviceuser" not in s:
                pass
            total += 1
            for name, test in PARTS:
                if test(s):
                    parts[name] += 1
                    if tree:
                        heads[name][" < ".join(frames[:6])] += 1
                    break
            else:
                parts["other"] += 1
                if tree:
                    heads["other"][" < ".join(frames[:6])] += 1
        for line in f:
            line = line.rstrip("\n")
            if not line:
                flush()
                frames = []
                continue
            if not line.startswith("\t"):
                flush()
                frames = []
                continue
            fields = line.strip().split(" ", 2)
            if len(fields) < 2:
                continue
            ip, rest = fields[0], " ".join(fields[1:])
            sym = rest.rsplit(" (", 1)[0]
            dso = rest.rsplit("(", 1)[-1].rstrip(")").split("/")[-1]
            frames.append(sym if sym != "[unknown]" else f"{dso}+{ip}")
        flush()
    print(f"samples: {total}")
    for name, n in parts.most_common():
        print(f"{100.0 * n / total:6.2f}%  {name}")
        if tree:
            for h, k in heads[name].most_common(tree):
                print(f"           {100.0 * k / total:5.2f}%  {h}")

main()
