#!/usr/bin/env python3
"""Capturing SMTP server used as sluis's next hop in the integration tests.

Usage: capture_smtp.py OUTDIR

Listens on 127.0.0.1 on an ephemeral port and prints `PORT <n>` (flushed) once it
accepts connections. Every accepted message is written to OUTDIR as `<n>.eml`
(the exact bytes received after dot-unstuffing) plus `<n>.json` with the envelope
(mail_from, which is "" for MAIL FROM:<>, rcpt_tos, mail_options, rcpt_options,
helo, peer). Both files are written under a temporary name and renamed, the JSON
last, so a reader that sees a `.json` file also sees the complete `.eml` file.

Recipients whose local part starts with `reject` get `550 5.1.1` at RCPT, those
starting with `defer` get `451 4.3.0`. While a file named `DEFER_ALL` exists in
OUTDIR every recipient gets `451 4.3.0`; while `REJECT_ALL` exists every recipient
gets `550 5.1.1`. Every RCPT outcome is appended to OUTDIR/rcpt.log as `CODE ADDRESS`.
"""

import asyncio
import itertools
import json
import os
import sys

from aiosmtpd.smtp import SMTP


class Capture:
    def __init__(self, outdir):
        self.outdir = outdir
        self.counter = itertools.count(1)

    def _flag(self, name):
        return os.path.exists(os.path.join(self.outdir, name))

    def _log(self, code, address):
        with open(os.path.join(self.outdir, "rcpt.log"), "a") as f:
            f.write("%s %s\n" % (code, address))

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.rsplit("@", 1)[0].lower()
        if self._flag("REJECT_ALL") or local.startswith("reject"):
            self._log(550, address)
            return "550 5.1.1 <%s>: recipient rejected by capture server" % address
        if self._flag("DEFER_ALL") or local.startswith("defer"):
            self._log(451, address)
            return "451 4.3.0 <%s>: try again later" % address
        self._log(250, address)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        base = "%06d-%d" % (n, os.getpid())
        meta = {
            # aiosmtpd reports the null reverse-path as "<>": store it as ""
            "mail_from": "" if envelope.mail_from in (None, "<>") else envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "rcpt_options": envelope.rcpt_options,
            "helo": session.host_name,
            "peer": session.peer[0] if session.peer else None,
        }
        eml = os.path.join(self.outdir, base + ".eml")
        with open(eml + ".tmp", "wb") as f:
            f.write(envelope.original_content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(eml + ".tmp", eml)
        js = os.path.join(self.outdir, base + ".json")
        with open(js + ".tmp", "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(js + ".tmp", js)
        return "250 2.0.0 OK captured %s" % base


async def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    handler = Capture(outdir)
    loop = asyncio.get_running_loop()

    def factory():
        return SMTP(
            handler,
            data_size_limit=None,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname="capture.test",
            command_call_limit=None,
        )

    server = await loop.create_server(factory, host="127.0.0.1", port=0)
    port = server.sockets[0].getsockname()[1]
    print("PORT %d" % port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
