"""Run a ComfyUI workflow once per image of a folder, through ComfyUI's HTTP API.

For every image: upload it (``POST /upload/image``), put its name into the workflow's target
``LoadImage`` node, queue the workflow (``POST /prompt``), follow its progress (websocket
``/ws`` when ``websocket-client`` is installed, else polling ``/history``), download the saved
images (``GET /view``) and write them to the output folder. Network calls are retried with
back-off; a summary (JSON) is printed at the end and the exit status is 1 when an image failed.

Example (a ComfyUI at the default address, this pack installed)::

    python -m comfy_client.batch --workflow workflows/api/1_colorize_a_photo.json \\
        --inputs ~/gray_photos --reference ~/colour_ref.jpg --output ~/colorized

The workflow may be in API or UI format (UI files are converted with ``/object_info``). The
target node is the ``LoadImage`` whose title contains "target" (``--target-node`` overrides);
``--reference`` replaces the image of the ``LoadImage`` whose title contains "reference"; a
workflow with several such nodes (template 7) takes one ``--reference`` per node, in the order
of their titles.

Standard library only; ``websocket-client`` (``pip install websocket-client``) is optional.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .workflow import ui_to_api

__all__ = ["BatchResult", "ComfyClient", "ComfyError", "find_load_image", "main", "run_batch"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
UPLOAD_SUBFOLDER = "deepexemplar_batch"


class ComfyError(RuntimeError):
    """The server refused a request or a prompt failed."""


@dataclass
class BatchResult:
    """Outcome of one input image.

    Attributes:
        input: the input file.
        ok: whether the prompt ran and its outputs were downloaded.
        outputs: files written.
        seconds: wall time from upload to the last download.
        error: what went wrong (empty when ``ok``).
        prompt_id: ComfyUI's id of the queued prompt.
    """

    input: str
    ok: bool = False
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    prompt_id: str = ""


class ComfyClient:
    """Minimal client of one ComfyUI server.

    Args:
        url: server address, e.g. ``http://127.0.0.1:8188``.
        retries: attempts per HTTP request for connection errors and 5xx answers.
        backoff: seconds before the first retry (doubles each time).
        timeout: seconds per HTTP request.
    """

    def __init__(self, url: str, retries: int = 3, backoff: float = 1.0,
                 timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.retries = max(1, retries)
        self.backoff = backoff
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex

    # ------------------------------------------------------------------ HTTP
    def _request(self, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> bytes:
        """One HTTP request with retries on connection errors and server errors."""
        delay, last = self.backoff, None
        for attempt in range(1, self.retries + 1):
            request = urllib.request.Request(self.url + path, data=body, method=method,
                                             headers=headers or {})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.read()
            except urllib.error.HTTPError as err:
                detail = err.read().decode("utf-8", "replace")
                if err.code < 500:
                    raise ComfyError(f"{method} {path}: HTTP {err.code}: {detail}") from err
                last = ComfyError(f"{method} {path}: HTTP {err.code}: {detail}")
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                last = ComfyError(f"{method} {path}: {err}")
            if attempt < self.retries:
                logger.warning("%s (attempt %d/%d), retrying in %.1f s", last, attempt,
                               self.retries, delay)
                time.sleep(delay)
                delay *= 2
        raise last

    def get_json(self, path: str) -> Any:
        """``GET path`` decoded as JSON."""
        return json.loads(self._request("GET", path))

    def object_info(self) -> dict:
        """``GET /object_info``: the schemas of every node the server knows."""
        return self.get_json("/object_info")

    def upload_image(self, path: Path, subfolder: str = UPLOAD_SUBFOLDER) -> str:
        """Upload an image into the server's input folder; return the ``LoadImage`` value."""
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in (("overwrite", "true"), ("subfolder", subfolder), ("type", "input")):
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
                         f"\r\n\r\n{value}\r\n".encode())
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
                     f'filename="{path.name}"\r\nContent-Type: application/octet-stream'
                     "\r\n\r\n".encode() + path.read_bytes() + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        answer = json.loads(self._request(
            "POST", "/upload/image", body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"}))
        sub = answer.get("subfolder") or ""
        return f"{sub}/{answer['name']}" if sub else answer["name"]

    def queue_prompt(self, prompt: dict) -> str:
        """``POST /prompt``; return the prompt id or raise with the server's validation errors."""
        body = json.dumps({"prompt": prompt, "client_id": self.client_id}).encode()
        try:
            answer = json.loads(self._request("POST", "/prompt", body,
                                              {"Content-Type": "application/json"}))
        except ComfyError as err:
            raise ComfyError(f"the server refused the workflow: {err}") from err
        return answer["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        """The finished prompt's history entry, or ``None`` while it is queued or running."""
        return self.get_json(f"/history/{prompt_id}").get(prompt_id)

    def download(self, image: dict) -> bytes:
        """``GET /view`` of one output entry (``filename``, ``subfolder``, ``type``)."""
        query = urllib.parse.urlencode({k: image.get(k, "") for k in ("filename", "subfolder",
                                                                       "type")})
        return self._request("GET", f"/view?{query}")

    # ------------------------------------------------------------------ waiting
    def wait(self, prompt_id: str, timeout: float,
             on_progress: Callable[[dict], None] | None = None) -> dict:
        """Block until the prompt finished; return its history entry.

        Follows the websocket when ``websocket-client`` is importable (progress messages go to
        ``on_progress``), otherwise polls ``/history`` every half second.

        Raises:
            ComfyError: the prompt failed, was interrupted, or ``timeout`` passed.
        """
        deadline = time.monotonic() + timeout
        try:
            import websocket  # noqa: F401 - optional dependency
        except ImportError:
            websocket = None
        if websocket is not None:
            self._follow_websocket(prompt_id, deadline, on_progress)
        while time.monotonic() < deadline:
            entry = self.history(prompt_id)
            if entry is not None:
                return _checked(entry, prompt_id)
            time.sleep(0.5)
        raise ComfyError(f"prompt {prompt_id}: no result within {timeout:.0f} s")

    def _follow_websocket(self, prompt_id: str, deadline: float,
                          on_progress: Callable[[dict], None] | None) -> None:
        """Read websocket messages until the prompt ends (or the socket fails: then poll)."""
        import websocket

        address = self.url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        try:
            wait_s = max(1.0, deadline - time.monotonic())
            sock = websocket.create_connection(address, timeout=wait_s)
        except (OSError, websocket.WebSocketException) as err:
            logger.warning("websocket unavailable (%s); polling /history instead", err)
            return
        try:
            sock.settimeout(2.0)
            while time.monotonic() < deadline:
                if self.history(prompt_id) is not None:
                    return  # finished (perhaps before the socket connected)
                try:
                    message = sock.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                if not isinstance(message, str):
                    continue  # binary preview frames
                event = json.loads(message)
                data = event.get("data", {})
                if data.get("prompt_id") not in (None, prompt_id):
                    continue
                if event.get("type") == "progress" and on_progress:
                    on_progress(data)
                if event.get("type") in ("execution_error", "execution_interrupted"):
                    return
                if event.get("type") == "executing" and data.get("node") is None \
                        and data.get("prompt_id") == prompt_id:
                    return
        except (OSError, websocket.WebSocketException) as err:
            logger.warning("websocket closed (%s); polling /history instead", err)
        finally:
            sock.close()


def _checked(entry: dict, prompt_id: str) -> dict:
    """Raise when a history entry reports an error or an interruption."""
    status = entry.get("status", {})
    if status.get("status_str") == "error" or status.get("completed") is False:
        messages = [m for m in status.get("messages", []) if m[0] in
                    ("execution_error", "execution_interrupted")]
        detail = "; ".join(f"{kind}: {data.get('exception_message', '').strip() or data}"
                           for kind, data in messages) or json.dumps(status)
        raise ComfyError(f"prompt {prompt_id} failed: {detail}")
    return entry


def find_load_image(prompt: dict, word: str) -> str | None:
    """Id of the single ``LoadImage`` node whose title contains ``word`` (case-insensitive).

    >>> find_load_image({"1": {"class_type": "LoadImage", "inputs": {},
    ...                        "_meta": {"title": "Load target"}}}, "target")
    '1'
    """
    found = [node_id for node_id, node in prompt.items()
             if node.get("class_type") == "LoadImage"
             and word.lower() in node.get("_meta", {}).get("title", "").lower()]
    if len(found) > 1:
        raise ComfyError(f"several LoadImage nodes are titled '*{word}*' ({found}); "
                         "name one with --target-node")
    return found[0] if found else None


def reference_nodes(prompt: dict) -> list[str]:
    """Ids of the ``LoadImage`` nodes titled "*reference*", in the order of their titles.

    >>> reference_nodes({"7": {"class_type": "LoadImage", "_meta": {"title": "reference 2"}},
    ...                  "3": {"class_type": "LoadImage", "_meta": {"title": "reference 1"}},
    ...                  "1": {"class_type": "LoadImage", "_meta": {"title": "target"}}})
    ['3', '7']
    """
    found = [(node.get("_meta", {}).get("title", ""), node_id) for node_id, node in prompt.items()
             if node.get("class_type") == "LoadImage"
             and "reference" in node.get("_meta", {}).get("title", "").lower()]
    return [node_id for _, node_id in sorted(found)]


def _set_references(client: ComfyClient, workflow: dict, references: list[Path]) -> None:
    """Upload each reference once into the workflow's reference nodes (one per node)."""
    nodes = reference_nodes(workflow)
    if not nodes:
        raise ComfyError("--reference given but no LoadImage node is titled 'reference'")
    if len(references) != len(nodes):
        titles = ", ".join(f"'{workflow[n]['_meta']['title']}'" for n in nodes)
        raise ComfyError(f"{len(references)} --reference image(s) for {len(nodes)} reference "
                         f"node(s) ({titles}); give --reference once per node, in that order")
    missing = [str(path) for path in references if not Path(path).is_file()]
    if missing:
        raise ComfyError(f"--reference {', '.join(missing)}: not a file")
    for node_id, path in zip(nodes, references, strict=True):
        workflow[node_id]["inputs"]["image"] = client.upload_image(path)


def load_workflow(path: Path, client: ComfyClient) -> dict:
    """Read an API-format workflow, converting a UI-format file with ``/object_info``."""
    workflow = json.loads(path.read_text(encoding="utf-8"))
    if "nodes" in workflow and "links" in workflow:
        workflow = ui_to_api(workflow, client.object_info())
    return workflow


def _save_outputs(client: ComfyClient, entry: dict, stem: str, out_dir: Path,
                  include_previews: bool) -> list[str]:
    """Download the saved (and optionally preview) images of a history entry."""
    written = []
    for node_id, output in sorted(entry.get("outputs", {}).items()):
        for index, image in enumerate(output.get("images", [])):
            if image.get("type") != "output" and not include_previews:
                continue
            suffix = Path(image["filename"]).suffix or ".png"
            target = out_dir / f"{stem}_node{node_id}_{index:03d}{suffix}"
            target.write_bytes(client.download(image))
            written.append(str(target))
    return written


def _progress_printer(report: Callable[[str], None], name: str) -> Callable[[dict], None]:
    """Turn websocket ``progress`` messages into report lines for one input."""
    def show(data: dict) -> None:
        report(f"  {name}: node {data.get('node')} {data.get('value')}/{data.get('max')}")

    return show


def run_batch(client: ComfyClient, workflow: dict, inputs: list[Path], out_dir: Path, *,
              target_node: str | None = None,
              reference: Path | Sequence[Path] | None = None,
              timeout: float = 600.0, include_previews: bool = False,
              report: Callable[[str], None] = print) -> list[BatchResult]:
    """Queue ``workflow`` once per input image and collect the outputs.

    Args:
        client: the server.
        workflow: API-format workflow with a target ``LoadImage`` node.
        inputs: image files.
        out_dir: where downloaded images are written (created).
        target_node: id of the ``LoadImage`` that receives each input (default: titled "target").
        reference: an image uploaded once into the ``LoadImage`` titled "reference", or one
            image per such node (in the order of their titles).
        timeout: seconds allowed per prompt.
        include_previews: also download ``PreviewImage`` (temporary) outputs.
        report: receives one progress line per event.

    Returns:
        One :class:`BatchResult` per input, in order.
    """
    target_node = target_node or find_load_image(workflow, "target")
    if target_node is None or target_node not in workflow:
        raise ComfyError("no target node: title a LoadImage node 'target' or pass --target-node")
    workflow = json.loads(json.dumps(workflow))
    if reference is not None:
        _set_references(client, workflow, [reference] if isinstance(reference, Path)
                        else list(reference))
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for number, path in enumerate(inputs, start=1):
        result, start = BatchResult(str(path)), time.perf_counter()
        try:
            prompt = json.loads(json.dumps(workflow))
            prompt[target_node]["inputs"]["image"] = client.upload_image(path)
            result.prompt_id = client.queue_prompt(prompt)
            report(f"[{number}/{len(inputs)}] {path.name}: queued {result.prompt_id}")
            entry = client.wait(result.prompt_id, timeout,
                                on_progress=_progress_printer(report, path.name))
            result.outputs = _save_outputs(client, entry, path.stem, out_dir, include_previews)
            result.ok = bool(result.outputs)
            if not result.ok:
                result.error = "the workflow produced no saved images (add a SaveImage node)"
        except (ComfyError, OSError) as err:
            result.error = str(err)
        result.seconds = time.perf_counter() - start
        report(f"[{number}/{len(inputs)}] {path.name}: "
               + (f"{len(result.outputs)} file(s) in {result.seconds:.1f} s" if result.ok
                  else f"FAILED: {result.error}"))
        results.append(result)
    return results


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m comfy_client.batch",
        description="Run a ComfyUI workflow for every image in a folder (HTTP API).")
    parser.add_argument("--url", default="http://127.0.0.1:8188", help="ComfyUI address")
    parser.add_argument("--workflow", type=Path, required=True,
                        help="workflow JSON (API format, or UI format converted via the server)")
    parser.add_argument("--inputs", type=Path, required=True, help="folder of input images")
    parser.add_argument("--output", type=Path, required=True, help="folder for the results")
    parser.add_argument("-r", "--reference", type=Path, action="append",
                        help="colour reference to upload once; repeat for a workflow with "
                             "several reference nodes (in the order of their titles)")
    parser.add_argument("--target-node", help="id of the LoadImage node receiving each input")
    parser.add_argument("--retries", type=int, default=3, help="attempts per HTTP request")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per image")
    parser.add_argument("--include-previews", action="store_true",
                        help="also download PreviewImage outputs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 all ok, 1 some failed, 2 usage)."""
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    inputs = sorted(p for p in args.inputs.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) \
        if args.inputs.is_dir() else []
    if not inputs:
        print(f"error: no images ({', '.join(IMAGE_SUFFIXES)}) in {args.inputs}", file=sys.stderr)
        return 2
    client = ComfyClient(args.url, retries=args.retries)
    try:
        workflow = load_workflow(args.workflow, client)
    except (ComfyError, OSError, ValueError) as err:  # no such file, not JSON, no server
        print(f"error: --workflow {args.workflow}: {err}", file=sys.stderr)
        return 2
    try:
        results = run_batch(client, workflow, inputs, args.output, target_node=args.target_node,
                            reference=args.reference, timeout=args.timeout,
                            include_previews=args.include_previews)
    except ComfyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    ok = sum(r.ok for r in results)
    summary = {"url": args.url, "workflow": str(args.workflow), "images": len(results),
               "succeeded": ok, "failed": len(results) - ok,
               "seconds": round(sum(r.seconds for r in results), 3),
               "results": [asdict(r) for r in results]}
    print(json.dumps(summary, indent=2))
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
