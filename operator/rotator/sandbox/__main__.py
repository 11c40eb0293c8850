"""``python -m rotator.sandbox serve``: run the emulator stack until SIGTERM or SIGINT.

Once every emulator listens it writes the env file (``export K=V`` lines, see
``Stack.env``) atomically, so a waiting process may poll for the file and source it; on a
clean stop it removes the file again, so a stale one never points at dead ports.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import signal
import sys
import tempfile

from rotator.sandbox import stack


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m rotator.sandbox")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run Entra, Graph, Key Vault and Databricks")
    serve.add_argument("--dir", type=pathlib.Path, help="CA and env file (default: a temp dir)")
    serve.add_argument("--env-file", type=pathlib.Path, help="default: <dir>/env")
    serve.add_argument("--vaults", type=int, default=1)
    serve.add_argument("--workspaces", type=int, default=1)
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument(
        "--propagation-delay",
        type=float,
        default=0.0,
        help="seconds before a new client secret authenticates (AADSTS7000215 until then)",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace, directory: pathlib.Path, env_file: pathlib.Path) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    async with stack.Stack.start(
        directory,
        vaults=args.vaults,
        workspaces=args.workspaces,
        seed=args.seed,
        propagation_delay=args.propagation_delay,
    ) as running:
        running.write_env_file(env_file)
        for service in running.services:
            print(f"{service.kind:<11} {service.url}", flush=True)
        print(f"env file    {env_file}", flush=True)
        await stopping.wait()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "serve":
        directory = args.dir or pathlib.Path(tempfile.mkdtemp(prefix="rotator-sandbox-"))
        env_file = args.env_file or directory / stack.ENV_FILE_NAME
        try:
            asyncio.run(serve(args, directory, env_file))
        finally:
            env_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
