"""Multipart form bodies as the CRM stand-ins receive file uploads (HubSpot files, Salesforce
ContentVersion, Pipedrive call-log recordings): the parts of a ``multipart/form-data`` (or
``multipart/mixed``) request by name, parsed with the standard library's MIME parser from the
body the stand-ins' journal already read."""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiohttp import web


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content_type: str
    data: bytes

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


async def multipart_fields(request: web.Request) -> dict[str, Part]:
    """The request's parts by their ``name`` (the last one wins); empty when not multipart."""
    if not request.content_type.startswith("multipart/"):
        return {}
    raw = await request.read()
    header = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = BytesParser(policy=policy.default).parsebytes(header + raw)
    fields: dict[str, Part] = {}
    for part in message.iter_parts():
        assert isinstance(part, EmailMessage)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        fields[name] = Part(
            name,
            part.get_filename(),
            part.get_content_type(),
            payload if isinstance(payload, bytes) else b"",
        )
    return fields
