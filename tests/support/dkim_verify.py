#!/usr/bin/env python3
"""Verify a message's DKIM signature with dkimpy (python3-dkim), an implementation sluis did not
write, against a given public key instead of DNS.

Usage: dkim_verify.py MESSAGE_FILE PUBLIC_KEY_BASE64 -> prints PASS (exit 0) or FAIL (exit 1)
"""

import sys

import dkim


def main():
    path, pub = sys.argv[1:3]
    with open(path, "rb") as f:
        msg = f.read()
    record = ("v=DKIM1; k=rsa; p=" + pub).encode()

    def dns(name, timeout=5):
        return record

    ok = dkim.verify(msg, dnsfunc=dns)
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
