#!/usr/bin/env python3
"""Send one message with Python's smtplib (a second, independent SMTP client).

Usage: smtplib_send.py PORT FROM TO[,TO...] MESSAGE_FILE [--starttls] [--smtputf8]

Prints `REFUSED <json>` with the per-recipient refusals and exits 0 when the
message was accepted; prints `ERROR <code> <text>` and exits 1 otherwise.
"""

import json
import smtplib
import ssl
import sys


def main():
    port, sender, rcpts, path = sys.argv[1:5]
    flags = set(sys.argv[5:])
    with open(path, "rb") as f:
        msg = f.read()
    try:
        with smtplib.SMTP("127.0.0.1", int(port), local_hostname="smtplib.test", timeout=30) as s:
            s.ehlo()
            if "--starttls" in flags:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                s.starttls(context=ctx)
                s.ehlo()
            opts = ["SMTPUTF8", "BODY=8BITMIME"] if "--smtputf8" in flags else []
            refused = s.sendmail(sender, rcpts.split(","), msg, mail_options=opts)
            print("REFUSED " + json.dumps({k: [v[0], v[1].decode("utf-8", "replace")] for k, v in refused.items()}))
    except smtplib.SMTPResponseException as e:
        print("ERROR %d %s" % (e.smtp_code, e.smtp_error.decode("utf-8", "replace")))
        sys.exit(1)
    except smtplib.SMTPRecipientsRefused as e:
        print("ERROR recipients refused %r" % (e.recipients,))
        sys.exit(1)


if __name__ == "__main__":
    main()
