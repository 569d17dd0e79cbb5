"""Attachments: base64 properties stored as content objects, served without the service.

python examples/attachments.py

A mail record carries a PDF and a text body as base64 (as an API would send them). The
stored version holds references; reads give the base64 back, or presigned URLs, or a
stream of the bytes. A new version that keeps the attachment uploads nothing.
"""

from __future__ import annotations

import asyncio
import base64
import os

from chronos_async import Chronos
from chronos_async.embedded import LocalStack

MAIL_MAP = {
    "indexed_props": ["subject"],
    "base64_props": {
        "attachments[].data": {"content_type": "application/pdf"},
        "body": {"content_type": "text/plain"},
    },
}


async def main(s3: bool = True) -> None:
    pdf = b"%PDF-1.7\n" + os.urandom(2 * 1024 * 1024)
    # Without `weed` (no SeaweedFS wheel), LocalStack uses a local folder instead of S3.
    async with (
        LocalStack(s3=s3) as stack,
        Chronos(stack.config(collection_maps={"mail": MAIL_MAP})) as chronos,
    ):
        mail = chronos.collection("mail", db="example")
        data = {
            "subject": "Q3 report",
            "body": base64.b64encode(b"Hi Ann,\nthe report is attached.\n").decode(),
            "attachments": [{"name": "q3.pdf", "data": base64.b64encode(pdf).decode()}],
        }
        r = await mail.create(data, actor="mailer")
        r = await mail.update(
            r.id, {**data, "subject": "Q3 report (final)"}, expected_ov=r.ov
        )  # same attachment: nothing uploaded again

        item = await mail.get_latest(r.id)
        assert item is not None
        assert item.data["attachments"] == data["attachments"]
        print("read back as written:", item.data["subject"])

        ref = await mail.get_latest(r.id, content="ref", presign=True, ttl_seconds=300)
        assert ref is not None
        pdf_ref = ref.data["attachments"][0]["data"]["content_ref"]
        print("stored as:", pdf_ref["content_type"], pdf_ref["size"], "bytes")
        print("download:", pdf_ref["url"][:60], "...")

        stream = await mail.open_content(r.id, "attachments[0].data")
        size = 0
        async for chunk in stream:
            size += len(chunk)
        print("streamed:", size, "bytes of", stream.content_type)
        text = await mail.open_content(r.id, "body", text=True)
        print("text rendition:", (await text.read()).decode().splitlines()[0])


if __name__ == "__main__":
    asyncio.run(main())
