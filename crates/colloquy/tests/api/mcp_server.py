"""A real MCP server for the integration tests, built with the official Python SDK (`mcp`,
whose FastMCP is called MCPServer since 2.0).

    python mcp_server.py sse|streamable-http|stdio

Over HTTP it binds 127.0.0.1 on a free port and prints that port on its first line of
stdout; over stdio it speaks on stdin/stdout. Its tools cover what the platform must handle:
answers, structured answers, a tool that fails, one that never answers, one that kills the
server mid-call, and one that reports the HTTP headers it was sent.
"""

import asyncio
import os
import socket
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("colloquy-test", instructions="Add numbers exactly; never round.")


@server.tool(description="Adds two integers.")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="Repeats the text it is given.")
def echo(text: str) -> str:
    return f"echo: {text}"


@server.tool(description="Always fails with the given reason.")
def fail(reason: str) -> str:
    raise ToolError(f"failed on purpose: {reason}")


@server.tool(description="Never answers.")
async def hang() -> str:
    await asyncio.sleep(3600)
    return "too late"


@server.tool(description="Stops the server in the middle of the call.")
def die() -> str:
    os._exit(3)


@server.tool(description="Returns the value of one HTTP request header.")
def header(name: str, ctx: Context) -> str:
    headers = ctx.headers or {}
    return headers.get(name.lower(), "<absent>")


def serve_http(transport: str) -> None:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(sock.getsockname()[1], flush=True)
    app = server.sse_app() if transport == "sse" else server.streamable_http_app()
    config = uvicorn.Config(app, log_level="warning")
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if mode == "stdio":
        server.run("stdio")
    else:
        serve_http(mode)
