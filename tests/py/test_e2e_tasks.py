"""End-to-end: the MCP tasks extension (`io.modelcontextprotocol/tasks`, 2026-07-28) from
the official MCP Python SDK, through its own extension interface: the client declares
the extension and claims the `resultType: "task"` answer of `tools/call`; the claim's
resolver polls `tasks/get` until the task ends, as a task-aware client does. The real
`ctmr-skill serve` runs the real demo MONAI bundle behind it.

Also checked: a task is a run of the server's one job table (`get_run` knows the task
id), and `tasks/cancel` ends a running task as `cancelled`.

Run: scripts/test.sh, or `.venv/bin/python -m pytest tests/py/test_e2e_tasks.py` once the
binary and the demo assets exist.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import anyio
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp_types import CallToolResult, Request, Result
from pydantic import TypeAdapter

from conftest import CALL_TIMEOUT_S, Server
from test_e2e_batch import make_volume, text_of

TASKS = "io.modelcontextprotocol/tasks"
RAW = TypeAdapter(dict[str, Any])


class CreatedTask(Result):
    """The `tools/call` answer that says a task was created."""

    result_type: Literal["task"]
    task_id: str
    status: str
    status_message: str | None = None
    poll_interval_ms: int | None = None


class TasksGet(Request[dict[str, Any], Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"


class TasksCancel(Request[dict[str, Any], Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"


async def tasks_get(session, task_id: str) -> dict[str, Any]:
    return await session.send_request(TasksGet(params={"taskId": task_id}), RAW)


async def until_ended(session, task_id: str, seen: list[dict[str, Any]]) -> dict[str, Any]:
    deadline = time.monotonic() + CALL_TIMEOUT_S
    while True:
        task = await tasks_get(session, task_id)
        seen.append(task)
        if task["status"] not in ("working", "input_required"):
            return task
        assert time.monotonic() < deadline, f"task {task_id} did not end"
        await anyio.sleep(min(task.get("pollIntervalMs") or 500, 1000) / 1000)


class Tasks(ClientExtension):
    """A minimal task-aware client: wait for the task, return the tool's own result."""

    identifier = TASKS

    def __init__(self) -> None:
        self.created: list[CreatedTask] = []
        self.polls: list[dict[str, Any]] = []

    def claims(self):
        return [ResultClaim(result_type="task", model=CreatedTask, resolve=self.resolve)]

    async def resolve(self, created: CreatedTask, ctx: ClaimContext) -> CallToolResult:
        self.created.append(created)
        task = await until_ended(ctx.session, created.task_id, self.polls)
        assert task["status"] == "completed", task
        return CallToolResult.model_validate(task["result"])


def batch_args(inputs: list[Path], out: Path, bundle: Path) -> dict[str, Any]:
    return {"inputs": [str(p) for p in inputs], "output_root": str(out), "upstream_root": str(bundle), "device": "cpu", "detail": "full"}


def test_run_batch_as_a_task_from_the_python_sdk(server: Server, demo_bundle: Path, tmp_path: Path):
    inputs = [make_volume(tmp_path / "cohort" / f"case{i}.nii.gz", i) for i in (1, 2)]
    server.extra_env["CTMR_SKILL_RUNS_DIR"] = str(tmp_path / "runs-index")
    tasks = Tasks()

    async def body():
        async with server.client(mode="2026-07-28", extensions=[tasks]) as client:
            result = await client.call_tool("run_batch", batch_args(inputs, tmp_path / "out", demo_bundle))
            run = await client.call_tool("get_run", {"run_id": tasks.created[0].task_id, "detail": "full"})
            # A read-only tool is answered in full even for a task-aware client.
            labels = await client.call_tool("list_labels", {"resolve": ["liver"], "upstream_root": str(demo_bundle)})
            return result, run, labels

    result, run, labels = anyio.run(body)
    assert len(tasks.created) == 1, f"run_batch was answered with a task\nstderr: {server.stderr_tail()}"
    assert tasks.created[0].status == "working"
    assert not result.is_error, text_of(result)
    cohort = result.structured_content
    assert cohort["status"] == "succeeded", cohort["summary"]
    assert [v["id"] for v in cohort["volumes"]] == ["case1", "case2"]
    assert all((tmp_path / "out" / f"case{i}" / "output.json").is_file() for i in (1, 2))
    # Polling saw the task working, with progress as its status message, then completed.
    statuses = [p["status"] for p in tasks.polls]
    assert statuses[-1] == "completed", statuses
    # (Python start-up and MONAI's import alone outlast the first poll.)
    working = [p for p in tasks.polls if p["status"] == "working"]
    assert working, statuses
    assert any(p.get("statusMessage") for p in working), working
    # The task is a run of the one job table.
    assert not run.is_error, text_of(run)
    assert run.structured_content["run"]["state"] == "succeeded"
    assert run.structured_content["result"]["volumes"][0]["id"] == "case1"
    assert len(tasks.created) == 1, "list_labels did not become a task"
    assert not labels.is_error, text_of(labels)


def test_tasks_cancel_ends_a_running_task(server: Server, demo_bundle: Path, tmp_path: Path):
    inputs = [make_volume(tmp_path / "cohort" / f"case{i}.nii.gz", i) for i in (1, 2, 3)]
    server.extra_env["CTMR_SKILL_RUNS_DIR"] = str(tmp_path / "runs-index")
    out = tmp_path / "out"

    async def body():
        async with server.client(mode="2026-07-28", extensions=[Tasks()]) as client:
            created = await client.session.call_tool(
                "run_batch", batch_args(inputs, out, demo_bundle), allow_claimed=True
            )
            assert isinstance(created, CreatedTask), created
            await client.session.send_request(TasksCancel(params={"taskId": created.task_id}), RAW)
            ended = await until_ended(client.session, created.task_id, [])
            run = await client.call_tool("get_run", {"run_id": created.task_id, "detail": "full"})
            return ended, run

    ended, run = anyio.run(body)
    assert ended["status"] == "cancelled", f"{ended}\nstderr: {server.stderr_tail()}"
    assert run.structured_content["run"]["state"] == "cancelled", text_of(run)
