"""Drive a ctmr-skill MCP server with the official MCP Python SDK client.

Run by tests/server_stdio.rs (not collected by pytest): it launches SERVER_EXE as
a stdio server (with CTMR_SERVER_STDIO_CHILD=MARKER_DIR) once per connection mode
- 'legacy' (initialize handshake), 'auto' (server/discover probe first) and
'2026-07-28' (stateless, per-request _meta) - exercises tools/list and tools/call
(structured output, isError, protocol errors, progress) and prints one JSON
report on stdout for the Rust side to check.

Usage: server_interop_client.py SERVER_EXE MARKER_DIR
"""

import json
import os
import sys

import anyio
from mcp import Client, MCPError
from mcp.client.stdio import StdioServerParameters

EXE, MARKERS = sys.argv[1], sys.argv[2]


async def session(mode):
    params = StdioServerParameters(
        command=EXE, env={"CTMR_SERVER_STDIO_CHILD": MARKERS}
    )
    report = {"mode": mode}
    async with Client(params, mode=mode, read_timeout_seconds=30) as client:
        report["protocol_version"] = client.protocol_version
        info = client.server_info
        report["server_name"] = info.name if info is not None else None
        report["instructions"] = client.instructions
        report["tools_capability"] = client.server_capabilities.tools is not None

        listed = await client.list_tools()
        report["tools"] = {
            t.name: {
                "title": t.title,
                "read_only": t.annotations.read_only_hint if t.annotations else None,
                "has_output_schema": t.output_schema is not None,
            }
            for t in listed.tools
        }

        echo = await client.call_tool("echo", {"text": "hi"})
        report["echo"] = {
            "is_error": echo.is_error,
            "structured": echo.structured_content,
            "texts": [c.text for c in echo.content],
        }

        fails = await client.call_tool("fails", {})
        report["fails"] = {
            "is_error": fails.is_error,
            "texts": [c.text for c in fails.content],
        }

        seen = []

        async def on_progress(progress, total, message):
            seen.append([progress, total, message])

        done = await client.call_tool("progress", {}, progress_callback=on_progress)
        report["progress"] = {"is_error": done.is_error, "seen": seen}

        try:
            await client.call_tool("nope", {})
            report["unknown_tool"] = None
        except MCPError as e:
            report["unknown_tool"] = e.code

        try:
            await client.call_tool("boom", {})
            report["boom"] = None
        except MCPError as e:
            report["boom"] = e.code

        again = await client.call_tool("echo", {"text": "still here"})
        report["after_errors"] = again.structured_content
    return report


async def main():
    reports = []
    for mode in ("legacy", "auto", "2026-07-28"):
        reports.append(await session(mode))
    print(json.dumps(reports))


anyio.run(main)
