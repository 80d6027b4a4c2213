"""`python -m tools.mailsink`: SMTP on MAILSINK_SMTP_PORT (1025), pages on MAILSINK_WEB_PORT (8025)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from aiohttp import web

from tools.mailsink.smtp import SinkHandler, start_smtp
from tools.mailsink.store import MailStore
from tools.mailsink.web import create_app


async def main() -> None:
    host = os.environ.get("MAILSINK_HOST", "127.0.0.1")
    smtp_port = int(os.environ.get("MAILSINK_SMTP_PORT", "1025"))
    web_port = int(os.environ.get("MAILSINK_WEB_PORT", "8025"))
    directory = os.environ.get("MAILSINK_DIR")
    store = MailStore(Path(directory) if directory else None)
    smtp = await start_smtp(SinkHandler(store), host, smtp_port)
    runner = web.AppRunner(create_app(store), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, web_port).start()
    print(f"mail sink: SMTP {host}:{smtp_port}, pages http://{host}:{web_port}/", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    smtp.close()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
