"""A real SMTP server (aiosmtpd) for the tests: each message it receives is decoded with the
standard library and written to <dir>/<n>.json as {"to", "subject", "text", "html"}.

Usage: smtp_sink.py <dir> <port>; prints "ready" once listening; stops when stdin closes."""
import email
import email.policy
import json
import pathlib
import sys

from aiosmtpd.controller import Controller

out = pathlib.Path(sys.argv[1])
port = int(sys.argv[2])


class Handler:
    count = 0

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        record = {
            "to": envelope.rcpt_tos,
            "from": envelope.mail_from,
            "subject": str(message["subject"]),
            "text": text.get_content() if text else None,
            "html": html.get_content() if html else None,
        }
        Handler.count += 1
        path = out / f"{Handler.count:04d}.json"
        path.with_suffix(".tmp").write_text(json.dumps(record))
        path.with_suffix(".tmp").rename(path)
        return "250 OK"


controller = Controller(Handler(), hostname="127.0.0.1", port=port)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
